from celery import shared_task
from django.utils import timezone

from payroll import payslips, services


@shared_task(name="payroll.finish_paying_batches", acks_late=True, reject_on_worker_lost=True)
def finish_paying_batches_task() -> int:
    return services.finish_paying_batches(now=timezone.now())


@shared_task(name="payroll.build_payslip_archive", acks_late=True, reject_on_worker_lost=True)
def build_payslip_archive_task(*, archive_id: int) -> None:
    """Idempotent: a second delivery leaves a finished archive alone and rebuilds an interrupted one."""
    payslips.build_payslip_archive(archive_id=archive_id, clock=timezone.now)
