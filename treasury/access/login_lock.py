"""The sign-in lock: after LOGIN_FAILURE_LIMIT failed sign-ins for one username within LOGIN_LOCK_MINUTES, every
further attempt for it, right password or not, is refused until the oldest of those failures is that old. The
sign-in page and the API's token call both authenticate through `LockingModelBackend`, so both are locked; the
page and the token call say until when. The password change page checks the old password through it too. The lock is per username, existing or not, so it tells nobody whether a
username exists. Attempts refused while locked are not counted (the lock ends on time, whoever keeps trying);
a successful sign-in clears the username's failures. Staff administrators see failures in the admin site and
unlock a user by deleting theirs.

Attempts for one username are taken one at a time (a PostgreSQL advisory lock held from the check to the record):
otherwise guesses sent in parallel would all pass the check before any of them is counted.
"""
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import LoginFailure

logger = logging.getLogger(__name__)


def locked_until(username: str, *, now: datetime) -> datetime | None:
    """When the lock on `username` ends, or None if it is not locked."""
    limit, window = settings.LOGIN_FAILURE_LIMIT, timedelta(minutes=settings.LOGIN_LOCK_MINUTES)
    recent = list(LoginFailure.objects.filter(username=username, at__gt=now - window)
                  .order_by("-at").values_list("at", flat=True)[:limit])
    return recent[-1] + window if len(recent) >= limit else None


def current_lock(username) -> datetime | None:
    """When the lock on `username` (as a form or a request body gave it, maybe empty) ends, if it is locked now."""
    return locked_until(str(username), now=timezone.now()) if username else None


def lock_message(until: datetime) -> str:
    """What the sign-in page and the token call answer while locked."""
    return _("Too many failed sign-ins for this user: try again after %(time)s.") % {
        "time": timezone.localtime(until).strftime("%H:%M")}


class LockingModelBackend(ModelBackend):
    """Django's username and password check, refused while the username is locked; a failure is counted."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        username = username if username is not None else kwargs.get("username")
        if not username:
            return super().authenticate(request, username=username, password=password, **kwargs)
        with transaction.atomic():
            if connection.vendor == "postgresql":  # SQLite runs one writing transaction at a time anyway
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"sign-in:{username}"])
            now = timezone.now()
            if locked_until(username, now=now):
                raise PermissionDenied  # authenticate() tries no other backend; the attempt is not counted
            user = super().authenticate(request, username=username, password=password, **kwargs)
            if user is None:
                _count_failure(username, request, now=now)
            else:
                LoginFailure.objects.filter(username=username).delete()
            return user


def forget_old_failures(*, now: datetime) -> int:
    """Delete the failures that no longer count, of every username (a failure for a username nobody tries again
    would otherwise stay for good); the hourly beat runs it. Returns how many went."""
    window = timedelta(minutes=settings.LOGIN_LOCK_MINUTES)
    deleted, _ = LoginFailure.objects.filter(at__lte=now - window).delete()
    return deleted


def _count_failure(username: str, request, *, now: datetime) -> None:
    window = timedelta(minutes=settings.LOGIN_LOCK_MINUTES)
    LoginFailure.objects.filter(username=username, at__lte=now - window).delete()  # no longer counted
    ip = request.META.get("REMOTE_ADDR") if request is not None else None
    LoginFailure.objects.create(username=username[:150], ip=ip or None, at=now)
    if locked_until(username, now=now):
        logger.warning("sign-in locked for %s after %d failures in %d minutes (last from %s)", username,
                       settings.LOGIN_FAILURE_LIMIT, settings.LOGIN_LOCK_MINUTES, ip or "-")
