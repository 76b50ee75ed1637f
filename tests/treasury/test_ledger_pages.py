"""The ledger pages, for auditors and administrators: every account with its balance, the balances per kind
(together zero), the ledger check on request (and its finding when a balance is tampered with), an account's
entries newest first with the balance after each, in a range of days, and as CSV oldest first with the running
balance. People's names and wallet ids are masked as on every page; other roles get 403."""
from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from tests import factories as f
from tests.clients import logged_in
from tests.tax.test_page_languages import assert_chinese, assert_english, page
from treasury.access import roles
from treasury.models import LedgerAccount, LedgerEntry
from treasury.money import yuan_to_fen

pytestmark = pytest.mark.django_db(transaction=True)  # the transfers settle after their commit, as in service


@pytest.fixture
def auditor(db):
    return f.make_user(role=roles.AUDITOR)


@pytest.fixture
def paid(world):
    """Three salaries from the employer's wallet, and a second payment to the first payee."""
    world.pay([100_00, 250_50, 3_00], batch_ref="salaries")
    world.pay([40_00], batch_ref="bonus", payees=world.payees[:1])
    return world


def test_the_ledger_lists_every_account_with_balances_per_kind_that_sum_to_zero(paid, auditor):
    client = logged_in(auditor)
    client.cookies["django_language"] = "en"
    response = client.get(reverse("ledger-account-list"))
    html = response.content.decode()
    totals = {t.kind: t.balance_fen for t in response.context["totals"]}
    assert sum(totals.values()) == 0 and response.context["total_balance_fen"] == 0
    assert totals[LedgerAccount.Kind.WALLET] == 0  # payer and payees are all wallets here
    payer = LedgerAccount.objects.get(wallet=paid.payer)
    assert payer.balance_fen == -393_50
    assert f'data-account="{payer.pk}"' in html and "-¥393.50" in html
    first = paid.payees[0]
    assert first.holder_name not in html and first.masked_holder_name in html  # a person's name masked
    assert first.wallet_id not in html and first.masked_wallet_id in html
    assert 'data-testid="check-result"' not in html  # the check reads every entry: only when asked

    by_kind = client.get(reverse("ledger-account-list"), {"kind": LedgerAccount.Kind.TREASURY_SINGLE}).content.decode()
    assert f'data-account="{payer.pk}"' not in by_kind and "No accounts match." in by_kind
    found = client.get(reverse("ledger-account-list"), {"q": first.wallet_id}).context["page"].object_list
    assert [a.pk for a in found] == [first.ledger_account.pk]


def test_the_ledger_check_on_request_and_what_it_finds(paid, auditor, ledger_tamper):
    client = logged_in(auditor)
    client.cookies["django_language"] = "en"
    html = client.get(reverse("ledger-account-list"), {"check": "1"}).content.decode()
    assert 'data-testid="check-result" data-ok="true"' in html
    assert "Balanced: 8 entries of 4 transfers over 6 accounts" in html
    account = LedgerAccount.objects.get(wallet=paid.payees[1])
    LedgerAccount.objects.filter(pk=account.pk).update(balance_fen=account.balance_fen + 1)  # by hand, in the database
    html = client.get(reverse("ledger-account-list"), {"check": "1"}).content.decode()
    assert 'data-testid="check-result" data-ok="false"' in html
    assert f"account {account.pk} ({account.code}): balance 25051 fen but its entries sum to 25050 fen" in html


def test_an_accounts_entries_newest_first_with_the_balance_after_each(paid, auditor):
    client = logged_in(auditor)
    account = LedgerAccount.objects.get(wallet=paid.payees[0])
    response = client.get(reverse("ledger-account-detail", args=[account.pk]))
    rows = response.context["page"].object_list
    assert [(e.amount_fen, e.balance_after_fen) for e in rows] == [(40_00, 140_00), (100_00, 100_00)]
    html = response.content.decode()
    assert paid.payees[0].holder_name not in html and paid.payees[0].wallet_id not in html
    assert "salaries line 1" in html and f'href="{reverse("transfer-detail", args=[rows[1].transfer_id])}"' in html
    # and back: a transfer's entries lead an auditor to their accounts
    transfer_page = client.get(reverse("transfer-detail", args=[rows[1].transfer_id])).content.decode()
    assert f'href="{reverse("ledger-account-detail", args=[account.pk])}" data-testid="ledger-account"' in transfer_page

    # The balance after each entry of a later page counts the entries of the pages before it. (The salaries
    # settled in one statement share their posting time; among them the entries' ids order them.)
    payer = LedgerAccount.objects.get(wallet=paid.payer)
    from treasury import views
    views.ENTRIES_PER_PAGE, before = 2, views.ENTRIES_PER_PAGE
    try:
        pages = [client.get(reverse("ledger-account-detail", args=[payer.pk]), {"page": n}).context["page"]
                 for n in (1, 2)]
    finally:
        views.ENTRIES_PER_PAGE = before
    rows = [(e.amount_fen, e.balance_after_fen) for p in pages for e in p.object_list]
    assert rows[0] == (-40_00, -393_50) and sorted(a for a, _ in rows) == [-250_50, -100_00, -40_00, -3_00]
    assert all(after - amount == next_after for (amount, after), (_, next_after) in zip(rows, rows[1:]))
    assert rows[-1][0] == rows[-1][1]  # the oldest entry: the balance after it is its own amount

    today = timezone.localdate()
    empty = client.get(reverse("ledger-account-detail", args=[account.pk]),
                       {"posted_to": (today - timezone.timedelta(days=1)).isoformat()})
    assert list(empty.context["page"].object_list) == []
    # A day whose bounds no datetime holds is a field error, not a 500; the entries are shown unfiltered.
    far = client.get(reverse("ledger-account-detail", args=[account.pk]), {"posted_to": "9999-12-31"})
    assert "posted_to" in far.context["form"].errors and len(far.context["page"].object_list) == 2
    assert client.get(reverse("ledger-account-detail", args=[999999])).status_code == 404


def test_an_accounts_entries_as_csv_oldest_first_with_the_running_balance(paid, auditor):
    client = logged_in(auditor)
    account = LedgerAccount.objects.get(wallet=paid.payer)
    response = client.get(reverse("ledger-account-csv", args=[account.pk]))
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == f'attachment; filename="ledger-account-{account.pk}.csv"'
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][0] == "记账时间 posted at"
    fen = [(yuan_to_fen(r[3], allow_negative=True), yuan_to_fen(r[4], allow_negative=True)) for r in rows[1:]]
    assert sorted(a for a, _ in fen) == [-250_50, -100_00, -40_00, -3_00] and fen[-1] == (-40_00, -393_50)
    running = 0
    for amount, after in fen:  # oldest first, the balance running
        running += amount
        assert after == running
    assert rows[1][2] == "结算 (settlement)" and rows[1][5] == "salaries" and rows[4][6] == "bonus line 1"
    # From a day on: the balance before it is carried in.
    tomorrow = (timezone.localdate() + timezone.timedelta(days=1)).isoformat()
    later = b"".join(client.get(reverse("ledger-account-csv", args=[account.pk]),
                                {"posted_from": tomorrow}).streaming_content).decode()
    assert len(later.strip().splitlines()) == 1  # the header only
    assert LedgerEntry.objects.filter(account=account).count() == 4


def test_only_auditors_and_administrators_read_the_ledger(paid):
    account = paid.payer.ledger_account
    urls = [reverse("ledger-account-list"), reverse("ledger-account-detail", args=[account.pk]),
            reverse("ledger-account-csv", args=[account.pk])]
    for role in (roles.TAX_STAFF, roles.FINANCE_CLERK, roles.EMPLOYER_OPERATOR, roles.INDIVIDUAL):
        client = logged_in(f.make_user(role=role, organization=paid.employer if role.startswith("employer") else None))
        assert [client.get(url).status_code for url in urls] == [403, 403, 403], role
    admin = logged_in(f.make_user(role=roles.ADMIN))
    assert [admin.get(url).status_code for url in urls] == [200, 200, 200]


def test_the_ledger_pages_follow_the_language(paid, auditor):
    client = logged_in(auditor)
    account = paid.payer.ledger_account
    for url in (reverse("ledger-account-list") + "?check=1", reverse("ledger-account-detail", args=[account.pk])):
        english = page(client, url, "en")
        assert_english(english, url)
        chinese = page(client, url, "zh-hans")
        assert_chinese(chinese, url)
    assert "总账" in page(client, reverse("ledger-account-list"), "zh-hans")


def test_the_ledger_in_the_api(paid, auditor):
    from tests.clients import api_as

    api = api_as(auditor)
    payer = LedgerAccount.objects.get(wallet=paid.payer)
    first = LedgerAccount.objects.get(wallet=paid.payees[0])
    accounts = api.get("/api/v1/ledger/accounts/").json()
    assert accounts["count"] == 6 and sum(a["balance_fen"] for a in accounts["results"]) == 0
    shown = next(a for a in accounts["results"] if a["id"] == first.pk)
    assert shown["name"] == paid.payees[0].masked_holder_name and paid.payees[0].wallet_id not in shown["code"]
    assert api.get("/api/v1/ledger/accounts/", {"search": paid.payees[0].wallet_id}).json()["count"] == 1
    assert api.get("/api/v1/ledger/accounts/", {"kind": "nonsense"}).status_code == 400
    entries = api.get(f"/api/v1/ledger/accounts/{payer.pk}/entries/", {"limit": 2, "offset": 2}).json()
    assert entries["count"] == 4 and len(entries["results"]) == 2
    oldest = entries["results"][-1]
    assert oldest["balance_after_fen"] == oldest["amount_fen"]  # nothing before the oldest entry
    assert api.get(f"/api/v1/ledger/accounts/{payer.pk}/entries/", {"posted_from": "x"}).status_code == 400
    far = api.get(f"/api/v1/ledger/accounts/{payer.pk}/entries/",
                  {"posted_from": "0001-01-01", "posted_to": "9999-12-31"})
    assert far.status_code == 400 and set(far.json()["details"]) == {"posted_from", "posted_to"}
    assert api.get("/api/v1/ledger/accounts/999999/").status_code == 404
    assert api_as(f.make_user(role=roles.TAX_STAFF)).get("/api/v1/ledger/accounts/").status_code == 403
