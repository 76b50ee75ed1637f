"""CSRF is enforced on login, logout, the language switch and session-authenticated API writes."""
import pytest
from django.test import Client

from tests import factories as f


@pytest.fixture
def strict_client():
    return Client(enforce_csrf_checks=True)


@pytest.mark.django_db
def test_login_without_token_is_refused(strict_client):
    user = f.make_user(role="tax_staff")
    response = strict_client.post("/login/", {"username": user.username, "password": f.PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in strict_client.session


@pytest.mark.django_db
def test_login_with_token_works(strict_client):
    user = f.make_user(role="tax_staff")
    strict_client.get("/login/")
    token = strict_client.cookies["csrftoken"].value
    response = strict_client.post("/login/", {"username": user.username, "password": f.PASSWORD,
                                              "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/"
    assert strict_client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_wrong_password_stays_on_login(client):
    user = f.make_user(role="tax_staff")
    response = client.post("/login/", {"username": user.username, "password": "not-the-password"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_logout_needs_a_token_and_a_post(strict_client):
    user = f.make_user(role="tax_staff")
    strict_client.force_login(user)
    assert strict_client.get("/logout/").status_code == 405
    assert strict_client.post("/logout/").status_code == 403
    assert strict_client.session.get("_auth_user_id") == str(user.pk)
    strict_client.get("/")
    token = strict_client.cookies["csrftoken"].value
    response = strict_client.post("/logout/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert "_auth_user_id" not in strict_client.session


@pytest.mark.django_db
def test_language_switch_needs_a_token(strict_client):
    assert strict_client.post("/i18n/setlang/", {"language": "en", "next": "/"}).status_code == 403


@pytest.mark.django_db
def test_session_api_write_without_token_is_refused(strict_client):
    strict_client.force_login(f.make_user(role="employer_operator"))
    response = strict_client.post("/api/v1/transfers/", data={}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["message"]
