"""An API address no route takes (an id that is not a number, an unknown action) answers the API's JSON 404 as
the schema declares, not the site's HTML page; an address without its slash is still redirected to the one with
it. And a download that answers CSV or XLSX declares both in the schema."""
import pytest

from tests import factories as f
from tests.clients import api_as, logged_in
from treasury.access import roles


@pytest.mark.django_db
@pytest.mark.parametrize("path", [
    "/api/v1/payroll/batches/abc/", "/api/v1/payroll/batches/%C2%84/approve/", "/api/v1/tax/agreements/null,null/",
    "/api/v1/transfers/1/nonsense/", "/api/v1/no-such-thing/", "/api/v1/social/flexible/payments/B%0A%C2%B3/",
])
def test_no_route_is_a_json_404(path):
    for client in (api_as(f.make_user(role=roles.EMPLOYER_OPERATOR, organization=f.make_organization())),
                   logged_in(f.make_user(role=roles.AUDITOR), enforce_csrf_checks=True)):
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            assert response.status_code == 404, (path, method)
            assert response["Content-Type"] == "application/json"
            assert response.json()["code"] == "not_found" and response.json()["message"]


@pytest.mark.django_db
def test_an_address_without_its_slash_is_still_redirected(client):
    client.force_login(f.make_user(role=roles.AUDITOR))
    response = client.get("/api/v1/transfers")
    assert response.status_code == 301 and response["Location"] == "/api/v1/transfers/"


@pytest.mark.django_db
def test_spreadsheet_downloads_declare_csv_and_xlsx(client):
    client.force_login(f.make_user(role=roles.AUDITOR))
    schema = client.get("/api/schema/", {"format": "json"}).json()
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    for path in ("/api/v1/payroll/batches/template/", "/api/v1/payroll/batches/{id}/error-report/",
                 "/api/v1/fiscal/requests/{id}/error-report/"):
        assert set(schema["paths"][path]["get"]["responses"]["200"]["content"]) == {"text/csv", xlsx}, path


@pytest.mark.django_db
def test_a_tips_message_direction_outside_its_choices_is_refused():
    api = api_as(f.make_user(role=roles.AUDITOR))
    response = api.get("/api/v1/tips/messages/", {"direction": "sideways"})
    assert response.status_code == 400 and list(response.json()["details"]) == ["direction"]
    for direction in ("in", "out", ""):
        assert api.get("/api/v1/tips/messages/", {"direction": direction}).status_code == 200, direction
