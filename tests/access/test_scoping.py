"""Employer A never sees employer B's data: not in pages, not in the API, not by guessing ids."""
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tests import factories as f
from treasury import selectors
from treasury.models import Organization

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_transfer_pages_show_only_own_organization(client, two_employers):
    a, b = two_employers["a"], two_employers["b"]
    client.force_login(a["user"])
    listing = client.get("/transfers/").content.decode()
    assert "PAY-A-001" in listing and "PAY-B-001" not in listing
    assert b["org"].name not in listing
    assert client.get(f"/transfers/{a['transfer'].pk}/").status_code == 200
    assert client.get(f"/transfers/{b['transfer'].pk}/").status_code == 404
    # Filtering by the other's batch does not reveal it either.
    filtered = client.get("/transfers/?batch_ref=PAY-B-001").content.decode()
    assert "data-transfer=" not in filtered and f'href="/transfers/{b["transfer"].pk}/"' not in filtered


def test_transfer_api_shows_only_own_organization(client, two_employers):
    a, b = two_employers["a"], two_employers["b"]
    client.force_login(a["user"])
    ids = [row["id"] for row in client.get("/api/v1/transfers/").json()["results"]]
    assert ids == [a["transfer"].pk]
    response = client.get(f"/api/v1/transfers/{b['transfer'].pk}/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    wallets = client.get("/api/v1/wallets/").json()["results"]
    assert [w["wallet_id"] for w in wallets] == [a["wallet"].wallet_id]
    assert client.get(f"/api/v1/wallets/{b['wallet'].pk}/").status_code == 404


def test_dashboard_counts_only_own_organization(client, two_employers):
    client.force_login(two_employers["a"]["user"])
    f.make_transfer(payer=two_employers["b"]["wallet"], state="failed", failure_message="B's failure")
    html = client.get("/").content.decode()
    assert 'data-testid="total-count">1<' in html
    assert "B&#x27;s failure" not in html and "B's failure" not in html
    assert 'data-testid="attention-count">0<' in html


def test_transfer_into_an_organizations_wallet_is_visible_to_it(two_employers):
    a, b = two_employers["a"], two_employers["b"]
    finance = f.make_organization(org_type=Organization.Type.FINANCE_BUREAU)
    subsidy = f.make_transfer(payer=f.make_wallet(holder_org=finance), payee=a["wallet"], organization=finance)
    assert subsidy in selectors.transfer_list(user=a["user"])
    assert subsidy not in selectors.transfer_list(user=b["user"])


def test_user_without_organization_sees_nothing(two_employers):
    lonely = f.make_user(role="employer_operator", organization=two_employers["a"]["org"])
    lonely.membership.delete()
    lonely.refresh_from_db()
    assert not selectors.transfer_list(user=lonely).exists()
    assert not selectors.wallet_list(user=lonely).exists()


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_auditor_and_admin_see_every_organization(client, two_employers, role):
    client.force_login(f.make_user(role=role))
    listing = client.get("/transfers/").content.decode()
    assert "PAY-A-001" in listing and "PAY-B-001" in listing
    assert client.get(f"/transfers/{two_employers['b']['transfer'].pk}/").status_code == 200


def test_lists_mask_personal_data(client, two_employers):
    a = two_employers["a"]
    client.force_login(a["user"])
    payee = a["transfer"].payee
    for url in ("/transfers/", f"/transfers/{a['transfer'].pk}/", "/api/v1/transfers/"):
        body = client.get(url).content.decode()
        assert "王小明" not in body, url
        assert payee.wallet_id not in body, url
    assert "王*明" in client.get("/transfers/").content.decode()


@pytest.mark.django_db
def test_dashboard_day_is_the_shanghai_calendar_day():
    org = f.make_organization()
    user = f.make_user(role="employer_operator", organization=org)
    wallet = f.make_wallet(holder_org=org)
    late_on_1st = dt.datetime(2026, 1, 1, 23, 30, tzinfo=SHANGHAI)  # 15:30 UTC on the 1st
    early_on_2nd = dt.datetime(2026, 1, 2, 0, 10, tzinfo=SHANGHAI)  # 16:10 UTC on the 1st
    f.make_transfer(payer=wallet, state="settled", amount_fen=1_00, created_at=late_on_1st)
    f.make_transfer(payer=wallet, state="settled", amount_fen=2_00, created_at=early_on_2nd)
    f.make_transfer(payer=wallet, state="failed", amount_fen=4_00, created_at=early_on_2nd)
    old_unknown = f.make_transfer(payer=wallet, state="unknown", amount_fen=8_00,
                                  created_at=dt.datetime(2025, 12, 20, 10, 0, tzinfo=SHANGHAI))
    old_failed = f.make_transfer(payer=wallet, state="failed", amount_fen=16_00,
                                 created_at=dt.datetime(2025, 12, 20, 10, 0, tzinfo=SHANGHAI))

    first = selectors.dashboard_summary(user=user, day=dt.date(2026, 1, 1))
    assert (first.total_count, first.total_amount_fen, first.settled_amount_fen) == (1, 1_00, 1_00)

    second = selectors.dashboard_summary(user=user, day=dt.date(2026, 1, 2))
    assert {r.state: (r.count, r.amount_fen) for r in second.by_state} == {"settled": (1, 2_00), "failed": (1, 4_00)}
    assert second.total_amount_fen == 6_00
    # Unknown outcomes wait for a person whatever their day; old failures are no longer "today's".
    attention_ids = {t.pk for t in second.attention}
    assert old_unknown.pk in attention_ids and old_failed.pk not in attention_ids
    assert second.attention_count == 2
