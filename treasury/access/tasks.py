"""Celery tasks of the access app."""
from celery import shared_task
from django.utils import timezone

from . import login_lock


@shared_task(name="access.forget_old_login_failures")
def forget_old_login_failures_task() -> int:
    return login_lock.forget_old_failures(now=timezone.now())
