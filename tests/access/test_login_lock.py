"""The sign-in lock: five failed sign-ins for a username within 15 minutes lock it, on the sign-in page and the API's
token call alike, right password or not, until the oldest of them is 15 minutes old; a username that does not
exist locks the same way; a successful sign-in clears the count."""
import datetime as dt

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tests import factories as f
from tests.concurrency import at_once
from treasury.access.models import LoginFailure

WRONG = "not-the-password"


def _sign_in(client: Client, username: str, password: str):
    return client.post("/login/", {"username": username, "password": password})


def _fail(username: str, times: int) -> None:
    client = Client()
    for _ in range(times):
        response = _sign_in(client, username, WRONG)
        assert response.status_code == 200 and "_auth_user_id" not in client.session
        counted = LoginFailure.objects.filter(username=username).count()
        assert ("登录失败次数过多" in response.content.decode()) == (counted >= 5)  # the fifth says it locked


@pytest.mark.django_db
def test_five_failures_lock_the_page_and_the_token_call_until_the_first_is_fifteen_minutes_old():
    user = f.make_user(role="tax_staff")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        _fail(user.username, 1)
    with time_machine.travel(start + dt.timedelta(minutes=5), tick=False):
        _fail(user.username, 4)  # five in 15 minutes: locked until start + 15 minutes
        client = Client()
        page = _sign_in(client, user.username, f.PASSWORD)  # the right password, refused
        assert page.status_code == 200 and "_auth_user_id" not in client.session
        until = timezone.localtime(start + dt.timedelta(minutes=15)).strftime("%H:%M")
        assert "登录失败次数过多" in page.content.decode() and until in page.content.decode()
        api = APIClient().post("/api/v1/auth/token/", {"username": user.username, "password": f.PASSWORD},
                               format="json")
        assert api.status_code == 429 and api.json()["code"] == "throttled" and until in api.json()["message"]
        assert int(api["Retry-After"]) == 600
    assert LoginFailure.objects.filter(username=user.username).count() == 5  # refused attempts are not counted
    with time_machine.travel(start + dt.timedelta(minutes=15, seconds=1), tick=False):
        client = Client()
        assert _sign_in(client, user.username, f.PASSWORD).status_code == 302  # the first failure aged out
        assert client.session["_auth_user_id"] == str(user.pk)
    assert not LoginFailure.objects.filter(username=user.username).exists()  # cleared by the sign-in


@pytest.mark.django_db
def test_a_success_clears_the_count_and_failures_of_another_user_do_not_count():
    user, other = f.make_user(role="tax_staff"), f.make_user(role="tax_staff")
    _fail(user.username, 4)
    _fail(other.username, 4)
    assert _sign_in(Client(), user.username, f.PASSWORD).status_code == 302
    _fail(user.username, 4)  # four again: not locked
    assert _sign_in(Client(), user.username, f.PASSWORD).status_code == 302
    _fail(other.username, 1)  # other's fifth: only other is locked
    assert _sign_in(Client(), other.username, f.PASSWORD).status_code == 200
    assert APIClient().post("/api/v1/auth/token/", {"username": user.username, "password": f.PASSWORD},
                            format="json").status_code == 200


@pytest.mark.django_db
def test_a_username_that_does_not_exist_locks_the_same_way():
    _fail("nobody-here", 5)
    page = _sign_in(Client(), "nobody-here", WRONG).content.decode()
    assert "登录失败次数过多" in page  # the same answer as for a real user: it tells nobody who exists


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("needs_postgresql")
def test_guesses_sent_at_once_are_counted_one_by_one():
    """Twenty wrong passwords at the same moment: five are tried and counted, the fifth locks, the other fifteen
    find the lock."""
    user = f.make_user(role="tax_staff")

    def guess():
        return _sign_in(Client(), user.username, WRONG).content.decode()

    pages = at_once(*[guess] * 20)
    assert sum("登录失败次数过多" in page for page in pages) == 16  # the fifth failure and the fifteen after it
    assert LoginFailure.objects.filter(username=user.username).count() == 5


@pytest.mark.django_db
def test_the_hourly_sweep_forgets_failures_that_no_longer_count():
    from treasury.access.tasks import forget_old_login_failures_task

    now = timezone.now()
    LoginFailure.objects.create(username="gone-quiet", at=now - dt.timedelta(minutes=16))
    LoginFailure.objects.create(username="still-counting", at=now - dt.timedelta(minutes=14))
    assert forget_old_login_failures_task.apply().get() == 1
    assert list(LoginFailure.objects.values_list("username", flat=True)) == ["still-counting"]


@pytest.mark.django_db
def test_guesses_of_the_old_password_on_the_change_page_count_toward_the_lock():
    # Someone at a desk left signed in could guess the password at /password/ without end (the old password was
    # checked there on its own), then sign in with it anywhere after the session ended.
    user = f.make_user(role="tax_staff")
    desk = Client()
    desk.force_login(user)
    new = "Qiao-7!tower-harbour"
    for attempt in range(5):
        response = desk.post("/password/", {"old_password": f"guess-{attempt}", "new_password1": new,
                                            "new_password2": new})
        assert response.status_code == 200 and 'data-testid="error-old_password"' in response.content.decode()
    assert LoginFailure.objects.filter(username=user.username).count() == 5
    right = desk.post("/password/", {"old_password": f.PASSWORD, "new_password1": new, "new_password2": new})
    assert right.status_code == 200 and "登录失败次数过多" in right.content.decode()
    user.refresh_from_db()
    assert user.check_password(f.PASSWORD)  # not changed while locked
    assert _sign_in(Client(), user.username, f.PASSWORD).status_code == 200  # and sign-in is locked too
