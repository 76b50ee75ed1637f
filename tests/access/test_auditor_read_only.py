import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import RequestFactory

from tests import factories as f
from treasury.access.decorators import role_required, writable_required


@writable_required
def _a_form_view(request):
    return HttpResponse("done")


@role_required("finance_approver")
def _an_approver_page(request):
    return HttpResponse("approver page")


def _request(method, user):
    request = getattr(RequestFactory(), method.lower())("/somewhere/")
    request.user = user
    return request


@pytest.mark.django_db
def test_auditor_cannot_post_to_a_page_but_can_read_it():
    auditor = f.make_user(role="auditor")
    with pytest.raises(PermissionDenied):
        _a_form_view(_request("POST", auditor))
    assert _a_form_view(_request("GET", auditor)).content == b"done"


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["finance_clerk", "employer_operator", "admin"])
def test_other_roles_can_post(role):
    assert _a_form_view(_request("POST", f.make_user(role=role))).content == b"done"


@pytest.mark.django_db
def test_auditor_who_is_also_admin_may_write():
    user = f.make_user(role="auditor")
    user.groups.add(Group.objects.get(name="admin"))
    assert _a_form_view(_request("POST", user)).content == b"done"


@pytest.mark.django_db
def test_role_required_refuses_other_roles_and_admits_admin():
    with pytest.raises(PermissionDenied):
        _an_approver_page(_request("GET", f.make_user(role="finance_clerk")))
    assert _an_approver_page(_request("GET", f.make_user(role="finance_approver"))).status_code == 200
    assert _an_approver_page(_request("GET", f.make_user(role="admin"))).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/transfers/", "/api/v1/wallets/", "/api/v1/me/"])
def test_auditor_writes_to_the_api_are_refused_with_a_code(client, url):
    client.force_login(f.make_user(role="auditor"))
    assert client.get(url).status_code == 200
    for method in (client.post, client.put, client.patch, client.delete):
        response = method(url, data={}, content_type="application/json")
        assert response.status_code == 403, (method, response.content)
        assert response.json()["code"] == "read_only_role"
        assert "read-only" in response.json()["message"]


@pytest.mark.django_db
def test_writes_by_other_roles_reach_the_view(client):
    # The read-only endpoints answer 405 to everyone else: the 403 above is the auditor rule, not the method.
    client.force_login(f.make_user(role="employer_operator"))
    response = client.post("/api/v1/transfers/", data={}, content_type="application/json")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_auditor_has_no_admin_site(client):
    client.force_login(f.make_user(role="auditor"))
    response = client.get("/admin/treasury/transfer/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
