"""Dashboard and transfer pages: language, filters, pagination, detail with entries and receipt link."""
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from tests import factories as f
from treasury.models import LedgerEntry

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def clerk(db):
    return f.make_user(role="employer_operator")


@pytest.fixture
def wallet(clerk):
    return f.make_wallet(holder_org=clerk.membership.organization)


def test_dashboard_is_chinese_by_default_and_english_after_switching(client, clerk, wallet):
    f.make_transfer(payer=wallet, state="settled", amount_fen=1_234_567)
    client.force_login(clerk)
    html = client.get("/").content.decode()
    assert '<html lang="zh-hans">' in html
    assert "<h1>工作台</h1>" in html and "今日转账（按状态）" in html and "已结算" in html
    assert "¥12,345.67" in html

    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert response.status_code == 302
    html = client.get("/").content.decode()
    assert '<html lang="en">' in html
    assert "<h1>Dashboard</h1>" in html and "Today's transfers by state" in html and "Settled" in html
    assert "工作台" not in html


def test_english_browser_gets_english(client, clerk):
    client.force_login(clerk)
    assert "<h1>Dashboard</h1>" in client.get("/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()


def test_filters_by_state_date_and_batch(client, clerk, wallet):
    day = dt.date(2026, 3, 5)
    at = dt.datetime(2026, 3, 5, 9, 0, tzinfo=SHANGHAI)
    settled = f.make_transfer(payer=wallet, state="settled", batch_ref="B-1", created_at=at)
    failed = f.make_transfer(payer=wallet, state="failed", batch_ref="B-1", created_at=at)
    other_day = f.make_transfer(payer=wallet, state="settled", batch_ref="B-2", created_at=at + dt.timedelta(days=1))
    client.force_login(clerk)

    def shown(query):
        html = client.get(f"/transfers/?{query}").content.decode()
        return {t.pk for t in (settled, failed, other_day) if f'data-transfer="{t.pk}"' in html}

    assert shown("") == {settled.pk, failed.pk, other_day.pk}
    assert shown("state=failed") == {failed.pk}
    assert shown(f"created_date={day.isoformat()}") == {settled.pk, failed.pk}
    assert shown("batch_ref=B-2") == {other_day.pk}
    assert shown(f"state=settled&created_date={day.isoformat()}&batch_ref=B-1") == {settled.pk}
    # A wrong filter value is ignored, not a 500.
    assert client.get("/transfers/?state=nonsense&created_date=yesterday").status_code == 200


def test_pagination_keeps_the_filters(client, clerk, wallet):
    for _ in range(51):
        f.make_transfer(payer=wallet, state="settled", batch_ref="BIG")
    f.make_transfer(payer=wallet, state="failed", batch_ref="BIG")
    client.force_login(clerk)
    first = client.get("/transfers/?state=settled").content.decode()
    assert first.count("data-transfer=") == 50
    assert "state=settled&amp;page=2" in first
    second = client.get("/transfers/?state=settled&page=2").content.decode()
    assert second.count("data-transfer=") == 1


def test_detail_shows_entries_and_links_to_trace(client, clerk, wallet):
    transfer = f.make_transfer(payer=wallet, state="settled", amount_fen=12_345_67, memo="三月工资")
    now = timezone.now()
    LedgerEntry.objects.create(transfer=transfer, account=transfer.payer.ledger_account, kind="settlement",
                               amount_fen=-12_345_67, posted_at=now)
    LedgerEntry.objects.create(transfer=transfer, account=transfer.payee.ledger_account, kind="settlement",
                               amount_fen=12_345_67, posted_at=now)
    client.force_login(clerk)
    html = client.get(f"/transfers/{transfer.pk}/").content.decode()
    assert "壹万贰仟叁佰肆拾伍元陆角柒分" in html
    assert html.count("¥12,345.67") >= 2 and "-¥12,345.67" in html
    assert f'href="/trace/transfer/{transfer.pk}/"' in html
    assert 'data-testid="receipt-link"' not in html  # no receipt yet
    assert transfer.payee.wallet_id not in html  # the account code carries the wallet id: masked


def test_detail_links_the_receipt_once_there_is_one(client, clerk, wallet):
    from treasury.receipts.models import Receipt

    transfer = f.make_transfer(payer=wallet, state="settled")
    Receipt.objects.create(number="R202603050000000001", kind="transfer", transfer=transfer, batch_ref=transfer.batch_ref,
                           payload={}, payload_sha256="0" * 64, signature="sig", key_id="k1",
                           verification_code="ABCD", file_path="receipts/x.pdf", pdf_sha256="0" * 64,
                           issued_at=timezone.now())
    client.force_login(clerk)
    html = client.get(f"/transfers/{transfer.pk}/").content.decode()
    assert 'href="/receipts/R202603050000000001.pdf"' in html
    api = client.get(f"/api/v1/transfers/{transfer.pk}/").json()
    assert api["receipt_url"] == "/receipts/R202603050000000001.pdf"


def test_pages_refuse_anonymous_visitors(client, clerk, wallet):
    transfer = f.make_transfer(payer=wallet)
    for url in ("/", "/transfers/", f"/transfers/{transfer.pk}/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), url


def test_detail_shows_smart_contract_conditions_readably(client, clerk, wallet):
    # An earmarked payment's conditions as the operator applies them, the deadline in Beijing time (the JSON
    # keeps it as UTC ISO text).
    conditions = {"payee_category": "WT01", "purposes": ["SUBSIDY"], "allowed_payees": [],
                  "expires_at": "2026-12-27T16:30:00+00:00"}
    transfer = f.make_transfer(payer=wallet, state="settled", conditions=conditions)
    client.force_login(clerk)
    html = client.get(f"/transfers/{transfer.pk}/").content.decode()
    assert 'data-testid="conditions"' in html and "(WT01)" in html and "SUBSIDY" in html
    assert "2026-12-28 00:30" in html and "expires_at" not in html and "2026-12-27T16:30" not in html


def test_pages_name_their_icon_and_favicon_ico_leads_to_it(client, clerk):
    client.force_login(clerk)
    page = client.get("/").content.decode()
    assert 'rel="icon" href="/static/img/favicon.svg"' in page
    answer = client.get("/favicon.ico")
    assert answer.status_code == 301 and answer["Location"] == "/static/img/favicon.svg"
