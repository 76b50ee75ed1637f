"""Every signed-in user changes their own password (auditors too: it is not a write to the books): the old one is
asked for, the new one twice and held to the validators; the session goes on, the next sign-in takes the new one."""
import pytest
from django.test import Client

from tests import factories as f

NEW = "Qiao-7!tower-harbour"


def _signed_in(user) -> Client:
    client = Client()
    assert client.post("/login/", {"username": user.username, "password": f.PASSWORD}).status_code == 302
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["tax_staff", "auditor"])
def test_a_user_changes_their_password(role):
    user = f.make_user(role=role)
    client = _signed_in(user)
    assert 'data-testid="password-change"' in client.get("/").content.decode()  # the link in the top bar
    assert 'data-testid="password-change-form"' in client.get("/password/").content.decode()

    wrong_old = client.post("/password/", {"old_password": "not-it", "new_password1": NEW, "new_password2": NEW})
    assert wrong_old.status_code == 200 and 'data-testid="error-old_password"' in wrong_old.content.decode()
    too_short = client.post("/password/", {"old_password": f.PASSWORD, "new_password1": "short1", "new_password2": "short1"})
    assert too_short.status_code == 200 and 'data-testid="error-new_password2"' in too_short.content.decode()

    done = client.post("/password/", {"old_password": f.PASSWORD, "new_password1": NEW, "new_password2": NEW})
    assert done.status_code == 302 and done["Location"] == "/password/done/"
    assert 'data-testid="password-changed"' in client.get(done["Location"]).content.decode()
    assert client.get("/").status_code == 200  # still signed in
    assert Client().post("/login/", {"username": user.username, "password": NEW}).status_code == 302
    assert Client().post("/login/", {"username": user.username, "password": f.PASSWORD}).status_code == 200


@pytest.mark.django_db
def test_the_page_needs_a_signed_in_user():
    response = Client().get("/password/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_a_new_password_ends_the_api_token_taken_with_the_old_one(admin_client):
    # A password is changed because someone else may know it: whoever took a token with it keeps no way in.
    user = f.make_user(role="tax_staff")
    token = Client().post("/api/v1/auth/token/", {"username": user.username, "password": f.PASSWORD}).json()["token"]
    api = Client(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/me/").status_code == 200
    client = _signed_in(user)
    assert client.post("/password/", {"old_password": f.PASSWORD, "new_password1": NEW,
                                      "new_password2": NEW}).status_code == 302
    assert api.get("/api/v1/me/").status_code == 401
    fresh = Client().post("/api/v1/auth/token/", {"username": user.username, "password": NEW}).json()["token"]
    assert fresh != token
    # An administrator setting a new password for the user (the admin site's form) ends it the same way.
    api = Client(HTTP_AUTHORIZATION=f"Token {fresh}")
    assert api.get("/api/v1/me/").status_code == 200
    newer = "Lantern-9!river-crossing"
    response = admin_client.post(f"/admin/auth/user/{user.pk}/password/",
                                 {"password1": newer, "password2": newer, "usable_password": "true"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert api.get("/api/v1/me/").status_code == 401
