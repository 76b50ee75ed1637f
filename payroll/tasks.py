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


@shared_task(name="payroll.make_line_transfers", acks_late=True, reject_on_worker_lost=True)
def make_line_transfers_task(*, batch_id: int, actor: str) -> int:
    """Idempotent: lines that got their transfer are skipped; keys are fixed per line."""
    return services.make_line_transfers(batch_id=batch_id, actor=actor, now=timezone.now())
