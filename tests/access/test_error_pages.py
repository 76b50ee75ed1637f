"""The error pages are the site's own, in the user's language: a role without the page (403), a missing page or
another organization's object (404), a form sent without its CSRF token, a server error (500)."""
import pytest
from django.test import Client, RequestFactory
from django.utils import translation
from django.views import defaults

from tests import factories as f


def _error_page(response, status: str) -> str:
    page = response.content.decode()
    assert f'data-testid="error-page" data-status="{status}"' in page
    return page


@pytest.mark.django_db
def test_a_page_outside_the_role_is_403_in_the_site_layout(client):
    client.force_login(f.make_user(role="tax_staff"))
    response = client.get("/payroll/")
    assert response.status_code == 403
    page = _error_page(response, "403")
    assert "无权访问" in page and 'data-nav="tax_agreements"' in page  # the navigation stays
    client.cookies["django_language"] = "en"
    assert "Not allowed" in _error_page(client.get("/payroll/"), "403")


@pytest.mark.django_db
def test_a_missing_page_is_404_in_the_site_layout(client):
    client.force_login(f.make_user(role="tax_staff"))
    response = client.get("/tax/agreements/999999/")
    assert response.status_code == 404
    assert "未找到" in _error_page(response, "404")


@pytest.mark.django_db
def test_a_form_without_its_token_gets_the_expired_form_page():
    strict = Client(enforce_csrf_checks=True)
    strict.cookies["django_language"] = "en"
    response = strict.post("/login/", {"username": "someone", "password": "whatever"})
    assert response.status_code == 403
    assert "Nothing was changed" in _error_page(response, "403-csrf")


def test_a_server_error_page_needs_no_request_context():
    with translation.override("zh-hans"):  # the language the middleware chose before the error
        response = defaults.server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    assert "出错了" in _error_page(response, "500")


@pytest.mark.django_db
def test_the_403_page_says_why_when_the_refusal_gives_a_reason(client):
    client.force_login(f.make_user(role="admin"))  # admin passes every role check; this page is an individual's own
    page = _error_page(client.get("/social/flexible/"), "403")
    assert 'data-testid="error-reason"' in page and "此页面仅供个人用户使用 (this page is for individuals)" in page
    client.force_login(f.make_user(role="tax_staff"))
    assert 'data-testid="error-reason"' not in _error_page(client.get("/payroll/"), "403")  # the role alone says it
