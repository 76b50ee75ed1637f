"""Celery tasks of the trace: thin wrappers around services."""
import logging

from celery import shared_task
from django.utils import timezone

from .services import make_checkpoint

logger = logging.getLogger(__name__)


@shared_task(name="treasury.trace_checkpoint", acks_late=True, reject_on_worker_lost=True)
def trace_checkpoint_task() -> int | None:
    """Sign a checkpoint over every stream head. Safe to run twice: with no head moved since the
    previous checkpoint nothing is written; concurrent runs are serialized."""
    checkpoint = make_checkpoint(now=timezone.now())
    if checkpoint is None:
        logger.info("trace checkpoint: no stream head moved since the last checkpoint")
        return None
    logger.info("trace checkpoint #%s: %s streams, %s events, root %s", checkpoint.number,
                checkpoint.stream_count, checkpoint.event_count, checkpoint.merkle_root)
    return checkpoint.number
