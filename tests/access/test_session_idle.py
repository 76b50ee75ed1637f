"""A signed-in session ends after DJANGO_SESSION_IDLE_MINUTES (30) without a request, and every request moves that
end on; the session cookie lasts only as long as the browser."""
import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from tests import factories as f


def _signed_in() -> Client:
    client = Client()
    user = f.make_user(role="tax_staff")
    response = client.post("/login/", {"username": user.username, "password": f.PASSWORD})
    assert response.status_code == 302
    return client


@pytest.mark.django_db
def test_a_session_idle_longer_than_the_limit_is_signed_out():
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client = _signed_in()
        assert client.get("/").status_code == 200
    with time_machine.travel(start + dt.timedelta(minutes=29), tick=False):
        assert client.get("/").status_code == 200  # within the limit: still signed in
    with time_machine.travel(start + dt.timedelta(minutes=29 + 31), tick=False):
        response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_each_request_moves_the_end_on():
    start = timezone.now()
    client = None
    for minutes in range(0, 121, 20):  # two hours of work, a request every 20 minutes
        with time_machine.travel(start + dt.timedelta(minutes=minutes), tick=False):
            client = client or _signed_in()
            assert client.get("/").status_code == 200, f"signed out after {minutes} minutes of work"


@pytest.mark.django_db
def test_the_session_cookie_ends_with_the_browser():
    client = _signed_in()
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert not cookie["expires"] and not cookie["max-age"]
