"""Celery tasks for receipts: thin, idempotent, keyword arguments that are ids."""
from celery import shared_task
from django.utils import timezone

from . import services


@shared_task(name="treasury.issue_transfer_receipts", acks_late=True, reject_on_worker_lost=True)
def issue_transfer_receipts_task(*, transfer_ids: list[int]) -> int:
    """Issue receipts for the settled transfers among transfer_ids; a repeated delivery issues nothing new."""
    return services.issue_transfer_receipts(transfer_ids=transfer_ids, now=timezone.now())
