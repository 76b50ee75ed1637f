"""Celery tasks of the transfer core: a few lines each, calling a service.

Each task is idempotent (safe to deliver twice), takes ids, and is acknowledged late so a killed
worker's task is delivered again.
"""
from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from treasury.services import transfers


@shared_task(
    name="treasury.submit_transfer_chunk",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),  # database busy or restarting; the operator side handles itself
    retry_backoff=True,
    max_retries=8,
)
def submit_transfer_chunk_task(*, transfer_ids: list[int]) -> dict:
    outcome = transfers.submit_transfer_chunk(transfer_ids=transfer_ids, now=timezone.now())
    return outcome.__dict__


@shared_task(name="treasury.recover_unconfirmed_transfers", acks_late=True, reject_on_worker_lost=True)
def recover_unconfirmed_transfers_task() -> dict:
    return transfers.recover_unconfirmed_transfers(now=timezone.now())


@shared_task(name="treasury.submit_stranded_pending_transfers", acks_late=True, reject_on_worker_lost=True)
def submit_stranded_pending_transfers_task() -> int:
    return transfers.submit_stranded_pending_transfers(now=timezone.now())
