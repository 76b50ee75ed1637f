from celery import shared_task
from django.utils import timezone

from payroll import services


@shared_task(name="payroll.finish_paying_batches", acks_late=True, reject_on_worker_lost=True)
def finish_paying_batches_task() -> int:
    return services.finish_paying_batches(now=timezone.now())
