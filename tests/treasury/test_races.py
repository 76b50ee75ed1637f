"""Integration (PostgreSQL row locks): a transfer's receipt issued while the transfer is reversed (or otherwise
moved on) at the same moment: both commit, neither waits for the other for ever nor is aborted as a deadlock."""
import threading

import pytest
from django.db import connections
from django.utils import timezone

from treasury.models import Transfer, TransferState
from treasury.receipts import services as receipt_services
from treasury.receipts.models import Receipt
from treasury.services import transfers as transfer_services
from treasury.services.ledger import check_ledger

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("needs_postgresql")]


def test_a_receipt_issued_as_its_transfer_is_reversed_does_not_deadlock(world, settings, monkeypatch):
    """The receipt's transaction inserts its row (its foreign key to the transfer is checked at commit) and appends
    to the transfer's trace stream; the reversal locks the transfer, posts, then appends to the same stream. Locked
    for update, the transfer blocked the receipt's key check at commit while the reversal waited for the stream the
    receipt held: PostgreSQL aborted one of them. The interleaving is forced with events, not left to timing."""
    settings.RECEIPTS_AUTO_ISSUE = False
    (transfer_id,) = world.pay([300_00], batch_ref="receipt-race")
    assert Transfer.objects.get(pk=transfer_id).state == TransferState.SETTLED
    stream_held, transfer_locked = threading.Event(), threading.Event()
    real_trace_issued, real_post = receipt_services._trace_issued, transfer_services._post

    def trace_issued_then_wait(receipts, *, now):
        real_trace_issued(receipts, now=now)  # the stream's head is locked until commit
        stream_held.set()
        transfer_locked.wait(timeout=10)

    def post_once_the_transfer_is_locked(transfer_ids, *, kind, now):
        transfer_locked.set()  # the reversal holds the transfer's lock; it appends to the stream next
        real_post(transfer_ids, kind=kind, now=now)

    monkeypatch.setattr(receipt_services, "_trace_issued", trace_issued_then_wait)
    monkeypatch.setattr(transfer_services, "_post", post_once_the_transfer_is_locked)
    outcomes = [None, None]

    def issue():
        try:
            outcomes[0] = receipt_services.issue_transfer_receipts(transfer_ids=[transfer_id], now=timezone.now())
        except Exception as error:  # noqa: BLE001 - the outcome is what the test looks at
            outcomes[0] = error
        finally:
            connections.close_all()

    def reverse():
        try:
            stream_held.wait(timeout=10)
            outcomes[1] = transfer_services.reverse_transfer(transfer_id=transfer_id, reason="paid by mistake",
                                                             actor="t", now=timezone.now())
        except Exception as error:  # noqa: BLE001
            outcomes[1] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=issue), threading.Thread(target=reverse)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes[0] == 1 and isinstance(outcomes[1], Transfer), outcomes
    assert Transfer.objects.get(pk=transfer_id).state == TransferState.REVERSED
    assert Receipt.objects.filter(transfer_id=transfer_id).count() == 1
    assert check_ledger().problems == []
