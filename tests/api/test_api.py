import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from rest_framework.test import APIClient

from tests import factories as f
from treasury.models import Organization

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def employers(db):
    out = {}
    for key in ("a", "b"):
        org = f.make_organization(org_type=Organization.Type.EMPLOYER, name=f"Employer {key.upper()}")
        wallet = f.make_wallet(holder_org=org)
        out[key] = {
            "org": org,
            "wallet": wallet,
            "user": f.make_user(role="employer_operator", organization=org),
            "settled": f.make_transfer(payer=wallet, state="settled", batch_ref=f"{key}-1", amount_fen=1_234_56,
                                       created_at=dt.datetime(2026, 3, 5, 10, 0, tzinfo=SHANGHAI)),
            "failed": f.make_transfer(payer=wallet, state="failed", batch_ref=f"{key}-2", amount_fen=1_00,
                                      created_at=dt.datetime(2026, 3, 6, 10, 0, tzinfo=SHANGHAI)),
        }
    return out


def _token(api, username, password=f.PASSWORD):
    return api.post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def test_token_obtain_and_use(api, employers):
    a = employers["a"]
    response = _token(api, a["user"].username)
    assert response.status_code == 200
    api.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    me = api.get("/api/v1/me/").json()
    assert me["username"] == a["user"].username
    assert me["organization"]["id"] == a["org"].pk and me["organization"]["uscc"] == a["org"].uscc
    assert me["roles"] == ["employer_operator"]
    assert me["read_only"] is False and me["sees_all_organizations"] is False
    # Token requests carry no session, so they need no CSRF token to write; they still hit the rules.
    assert api.post("/api/v1/transfers/", {}, format="json").status_code == 405


def test_wrong_password_gives_a_coded_error(api, employers):
    response = _token(api, employers["a"]["user"].username, password="wrong-password-here")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and body["message"] and "non_field_errors" in body["details"]


def test_bad_token_and_no_credentials_are_refused_with_codes(api, employers):
    anonymous = api.get("/api/v1/transfers/")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"
    assert anonymous.json()["code"] == "not_authenticated"
    api.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    response = api.get("/api/v1/transfers/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_transfer_list_is_scoped_and_filtered(api, employers):
    a = employers["a"]
    api.force_authenticate(a["user"])

    def ids(query=""):
        response = api.get(f"/api/v1/transfers/{query}")
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids() == {a["settled"].pk, a["failed"].pk}
    assert ids("?state=failed") == {a["failed"].pk}
    assert ids("?created_date=2026-03-05") == {a["settled"].pk}
    assert ids("?batch_ref=a-2") == {a["failed"].pk}
    assert ids("?batch_ref=b-1") == set()
    row = api.get("/api/v1/transfers/?batch_ref=a-1").json()["results"][0]
    assert row["amount_fen"] == 1_234_56 and row["amount_yuan"] == "1234.56"
    assert row["payee"]["wallet_id"] != a["settled"].payee.wallet_id and "*" in row["payee"]["wallet_id"]
    assert row["trace_url"] == f"/trace/transfer/{a['settled'].pk}/"


def test_bad_filter_is_a_400_with_details(api, employers):
    api.force_authenticate(employers["a"]["user"])
    response = api.get("/api/v1/transfers/?state=paid&created_date=5/3/2026")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and set(body["details"]) == {"state", "created_date"}


def test_other_organizations_transfer_is_not_found(api, employers):
    api.force_authenticate(employers["a"]["user"])
    response = api.get(f"/api/v1/transfers/{employers['b']['settled'].pk}/")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": response.json()["message"]}
    own = api.get(f"/api/v1/transfers/{employers['a']['settled'].pk}/")
    assert own.status_code == 200 and own.json()["entries"] == [] and own.json()["receipt_url"] is None


def test_wallets_are_scoped_and_personal_ones_masked(api, employers):
    api.force_authenticate(employers["a"]["user"])
    rows = api.get("/api/v1/wallets/").json()["results"]
    assert [r["wallet_id"] for r in rows] == [employers["a"]["wallet"].wallet_id]
    assert rows[0]["balance_fen"] == 0

    api.force_authenticate(f.make_user(role="auditor"))
    rows = api.get("/api/v1/wallets/?limit=100").json()["results"]
    personal = [r for r in rows if r["wallet_type"] == "WT01"]
    assert personal and all("*" in r["wallet_id"] and "*" in r["holder_name"] for r in personal)
    assert len(rows) == len({t.payee_id for e in employers.values() for t in (e["settled"], e["failed"])}) + 2


def test_auditor_reads_everything_and_is_marked_read_only(api, employers):
    api.force_authenticate(f.make_user(role="auditor"))
    me = api.get("/api/v1/me/").json()
    assert me["read_only"] is True and me["organization"] is None and me["sees_all_organizations"] is True
    assert api.get("/api/v1/transfers/").json()["count"] == 4
