"""Answers match the schema the API publishes (found by schemathesis): a bad `check_date` on the discrepancy case
lists is a field error under its name (`details` an object, as ErrorSerializer declares; it was a bare list), and
a flexible-employment month, written YYYY-MM, is declared as such (it was declared a full date)."""
import pytest

from tests import factories as f
from tests.clients import api_as
from treasury.access import roles
from treasury.models import Organization


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/tax/reconciliation/cases/", "/api/v1/social/reconciliation/cases/"])
@pytest.mark.parametrize("day", ["3467-03-01", "1999-12-31", "yesterday"])
def test_a_bad_check_date_is_a_field_error_under_its_name(url, day):
    authority = f.make_organization(org_type=Organization.Type.TAX_AUTHORITY, code="13701000000")
    api = api_as(f.make_user(role=roles.TAX_STAFF, organization=authority))
    response = api.get(url, {"check_date": day})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and isinstance(body["details"], dict)
    assert list(body["details"]) == ["check_date"] and body["details"]["check_date"]
    assert api.get(url, {"check_date": "2026-03-02"}).status_code == 200


@pytest.mark.django_db
def test_flexible_months_are_declared_as_year_and_month(client):
    client.force_login(f.make_user(role=roles.AUDITOR))
    schemas = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]
    for name in ("Period", "QuoteLine"):
        month = schemas[name]["properties"]["month"]
        assert month["type"] == "string" and "format" not in month, name
        assert month["pattern"] == r"^\d{4}-(0[1-9]|1[0-2])$", name
