"""Celery tasks of the social-insurance domain (queue "social"): a few lines each, calling a service. All idempotent."""
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from social_security import services


@shared_task(name="social_security.send_declaration", acks_late=True, reject_on_worker_lost=True)
def send_declaration_task(*, declaration_id: int) -> str:
    return services.send_declaration(declaration_id=declaration_id, now=timezone.now()).state


@shared_task(name="social_security.notify_payment", acks_late=True, reject_on_worker_lost=True)
def notify_payment_task(*, declaration_id: int) -> bool:
    return services.notify_payment(declaration_id=declaration_id, now=timezone.now()).payment_notified_at is not None


@shared_task(name="social_security.finish_paying_declarations", acks_late=True, reject_on_worker_lost=True)
def finish_paying_declarations_task() -> int:
    return services.finish_paying_declarations(now=timezone.now())


@shared_task(name="social_security.resend_pending", acks_late=True, reject_on_worker_lost=True)
def resend_pending_task() -> dict:
    return services.resend_pending(now=timezone.now())


@shared_task(name="social_security.reconcile_yesterday", acks_late=True, reject_on_worker_lost=True)
def reconcile_yesterday_task() -> dict:
    from social_security.reconciliation import reconcile_day

    now = timezone.now()
    run = reconcile_day(check_date=timezone.localdate(now) - timedelta(days=1), now=now)
    return {"matched": run.matched_count, "discrepancies": run.discrepancy_count}
