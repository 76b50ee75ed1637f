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


# Where an auditor's POST is not refused, and why: signing in and out, the language, their own password; the
# public receipt check (it changes nothing); a payslip archive (it only reads the batch: payroll/api.py); the
# tax system's SOAP endpoint (a machine's, authenticated by its signed messages, not by a session); the API's JSON
# 404 for an address no route takes (no route, nothing to write: it answers 404 to everyone, config/urls.py).
WRITES_AN_AUDITOR_MAY_SEND = {
    "django.views.generic.base.RedirectView", "django.views.i18n.set_language", "django.contrib.auth.views.LoginView",
    "django.contrib.auth.views.LogoutView", "django.contrib.auth.views.PasswordChangeView",
    "django.contrib.auth.views.PasswordChangeDoneView", "treasury.access.api.TokenObtainView",
    "treasury.receipts.views.verify_upload", "adapters.tips.views.soap_endpoint",
    "treasury.access.api_errors.api_not_found",
}
MAY_SEND_BY_URL = {"/api/v1/receipts/verify/", "/api/v1/payroll/batches/1/payslip-archives/", "/payroll/1/payslips/"}


def _every_route():
    import re

    from django.urls import URLResolver, get_resolver

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern.lookup_str

    for route, view in walk(get_resolver().url_patterns):
        url = route.replace("^", "").replace("$", "")
        url = re.sub(r"\(\?P<format>[^)]*\)", "", url)  # the routers' ".json" variants: the same views
        url = re.sub(r"\(\?P<\w+>\[RB\][^)]*\)", "R2025031400000000001", url)
        url = re.sub(r"\(\?P<\w+>(\w+)\|[^)]*\)", r"\1", url)
        url = re.sub(r"\(\?P<\w+>[^)]*\)|<int:\w+>", "1", url)
        url = re.sub(r"<(?:str|path|slug):\w+>|<\w+>", "x", url)
        url = "/" + url.replace("\\.", ".").replace("\\", "")
        if not url.startswith("/admin/") and "format" not in route:
            yield url, view


@pytest.mark.django_db
def test_no_page_or_api_endpoint_takes_a_write_from_an_auditor(client):
    """Every route of the service, sent POST, PUT, PATCH and DELETE by an auditor who also holds every other role but
    the administrator's: each refuses (403) or has no such method (405), before it looks for the object, so an id
    that exists would fare no better."""
    auditor = f.make_user(role="auditor", organization=f.make_organization())
    for role in ("employer_operator", "employer_approver", "finance_clerk", "finance_approver", "tax_staff",
                 "individual"):
        auditor.groups.add(Group.objects.get_or_create(name=role)[0])
    client.force_login(auditor)
    taken = []
    routes = list(_every_route())
    assert len(routes) > 150
    for url, view in routes:
        if view in WRITES_AN_AUDITOR_MAY_SEND or url in MAY_SEND_BY_URL:
            continue
        for method in ("post", "put", "patch", "delete"):
            response = getattr(client, method)(url, data={}, content_type="application/json")
            if response.status_code not in (403, 405):
                taken.append((method.upper(), url, view, response.status_code))
    assert taken == []
