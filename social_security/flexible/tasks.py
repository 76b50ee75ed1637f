"""Celery tasks of flexible-employment premiums (queue "social"): a few lines each, calling a service."""
from celery import shared_task
from django.utils import timezone

from . import services


@shared_task(name="social_security.flexible_finish_payments", acks_late=True, reject_on_worker_lost=True)
def finish_paying_payments_task() -> int:
    return services.finish_paying_payments(now=timezone.now())


@shared_task(name="social_security.flexible_make_periods", acks_late=True, reject_on_worker_lost=True)
def make_all_periods_task() -> int:
    return services.make_all_periods(now=timezone.now())


@shared_task(name="social_security.flexible_notify_payment", acks_late=True, reject_on_worker_lost=True)
def notify_payment_task(*, payment_id: int) -> bool:
    return services.notify_payment(payment_id=payment_id, now=timezone.now()).notified_at is not None
