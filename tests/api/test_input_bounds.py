"""Numbers from outside the database's range are refused as invalid (400), never a server error: a page's
`?limit=` is capped, and an id a client sends (a filter, a list of ids) holds in a 64-bit column. Found by
fuzzing the API against its schema: each of these answered 500 (SQLite's OverflowError, or "datatype
mismatch" for the LIMIT). And a `?limit=` or `?offset=` that is not a whole number is refused by name, where it
was quietly ignored."""
import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from tests import factories as f
from tests.clients import api_as
from treasury.access import roles
from treasury.api_limits import MAX_ID, MAX_PAGE_LIMIT, ApiPagination
from treasury.models import Organization

HUGE = 18449125068513158400383969  # what the fuzzer sent: past 2**64


def test_a_page_holds_at_most_the_cap_whatever_limit_asks():
    paginator = ApiPagination()
    for asked, got in ((str(HUGE), MAX_PAGE_LIMIT), ("5000", MAX_PAGE_LIMIT), ("20", 20)):
        request = Request(APIRequestFactory().get("/api/v1/transfers/", {"limit": asked}))
        assert paginator.get_limit(request) == got, asked


@pytest.mark.django_db
def test_a_huge_limit_or_offset_is_an_answer_not_a_server_error():
    org = f.make_organization(org_type=Organization.Type.EMPLOYER)
    wallet = f.make_wallet(holder_org=org)
    for _ in range(3):
        f.make_transfer(payer=wallet)
    api = api_as(f.make_user(role=roles.EMPLOYER_OPERATOR, organization=org))
    response = api.get("/api/v1/transfers/", {"limit": HUGE})
    assert response.status_code == 200, response.content[:300]
    assert response.json()["count"] == 3 and len(response.json()["results"]) == 3
    assert api.get("/api/v1/transfers/", {"offset": HUGE}).json()["results"] == []
    assert api.get("/api/v1/wallets/", {"limit": HUGE}).status_code == 200


@pytest.mark.django_db
def test_a_deduction_filter_by_a_package_id_out_of_range_is_refused():
    authority = f.make_organization(org_type=Organization.Type.TAX_AUTHORITY, code="13701000000")
    api = api_as(f.make_user(role=roles.TAX_STAFF, organization=authority))
    for package in (HUGE, MAX_ID + 1, 0):
        response = api.get("/api/v1/tax/deductions/", {"package": package})
        assert response.status_code == 400, (package, response.content[:300])
        assert set(response.json()["details"]) == {"package"}
    assert api.get("/api/v1/tax/deductions/", {"package": MAX_ID}).json()["count"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize("query", [{"limit": "null"}, {"limit": "-5"}, {"limit": "0"}, {"limit": "2.5"},
                                   {"limit": "true"}, {"offset": "null"}, {"offset": "-1"}, {"offset": "1e3"}])
def test_a_limit_or_offset_that_is_not_a_whole_number_is_refused_by_name(query):
    api = api_as(f.make_user(role=roles.AUDITOR))
    response = api.get("/api/v1/transfers/", query)
    assert response.status_code == 400, query
    assert response.json()["code"] == "invalid" and list(response.json()["details"]) == list(query)
    # Absent or empty: the defaults, as before.
    assert api.get("/api/v1/transfers/", {"limit": "", "offset": ""}).status_code == 200
    assert api.get("/api/v1/transfers/", {"limit": "3", "offset": "0"}).status_code == 200


@pytest.mark.django_db
def test_every_paged_list_declares_the_400_a_bad_limit_gets(client):
    client.force_login(f.make_user(role=roles.AUDITOR))
    schema = client.get("/api/schema/", {"format": "json"}).json()
    paged = {path: operation for path, operations in schema["paths"].items() for method, operation in operations.items()
             if method == "get" and "limit" in {p["name"] for p in operation.get("parameters", [])}}
    assert len(paged) > 30
    assert [path for path, operation in paged.items() if "400" not in operation["responses"]] == []
