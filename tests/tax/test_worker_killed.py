"""Integration: a real Celery worker deducting a batch package (3102) is killed inside the operator's call; every
item is debited once, none is lost, and the tax system gets one 2102 that says so. The package task makes each
chunk's transfers claimed and sends them itself: the chunk in flight when the worker dies (applied by the
operator, never recorded here) is settled by the transfer core's recovery, and the chunks never made are made
and sent by the tax sweep (`finish_packages`), as beat runs them."""
import time

import pytest
from django.utils import timezone

from adapters.tips.interface import ResultCode
from tax import services
from tax.models import DeductionPackage, DeductionState, PackageState, TaxDeduction, TreasuryEntry
from tests.tax.helpers import batch, item
from tests.workers import broker_url, celery_to_broker, wait_for, worker_factory  # noqa: F401 (fixtures)
from treasury.models import LedgerEntry, Transfer, TransferState
from treasury.services import transfers as transfer_services
from treasury.services.ledger import check_ledger

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("needs_postgresql")]

CHUNK = 4  # items per chunk and transfers per operator call, in the worker and here: 10 items make three chunks


def test_a_worker_killed_while_deducting_a_package_debits_every_item_once(
        tax, tips_sandbox, celery_to_broker, worker_factory, settings):
    settings.TAX_BATCH_CHUNK_SIZE = settings.TRANSFER_CHUNK_SIZE = CHUNK
    payers = [tax.taxpayer(balance_fen=1_000_00) for _ in range(10)]
    items = [item(payer=p, protocol_no=tax.signed_and_verified(p).protocol_no, amount_fen=10_00 + i)
             for i, p in enumerate(payers)]
    stranger = tax.taxpayer(balance_fen=1_000_00)
    items.append(item(payer=stranger, protocol_no="NO-AGREEMENT", amount_fen=5_00))  # refused: no transfer
    message = batch(tax, items)
    worker_env = dict(
        TAX_BATCH_CHUNK_SIZE=str(CHUNK), TRANSFER_CHUNK_SIZE=str(CHUNK), TIPS_SYSTEM_URL=tips_sandbox.url,
        TIPS_PEER_PUBLIC_KEY_FILE=str(settings.TIPS_PEER_PUBLIC_KEY_FILE), TIPS_NODE_CODE=settings.TIPS_NODE_CODE,
        TIPS_PEER_NODE_CODE=settings.TIPS_PEER_NODE_CODE)
    treasury_before = tax.balance(tax.treasury_wallet.wallet_id)
    tax.ecny.admin.set_fault("latency_ms", value=3000)  # each operator call takes 3 s
    first = worker_factory(queues="tax,treasury", **worker_env)

    assert services.receive_batch(message=message, now=timezone.now()).result == ResultCode.SUCCESS
    package = DeductionPackage.objects.get()
    transfers = Transfer.objects.filter(batch_ref=package.stream_key)
    wait_for(lambda: transfers.filter(state=TransferState.SUBMITTED).exists(), seconds=60,
             what="the package's first chunk made and being sent by the worker")
    time.sleep(1)  # the pool process is inside the operator call
    first.kill()
    # The kill really interrupted the package: one chunk sent and unanswered, the others never made.
    assert set(transfers.values_list("state", flat=True)) == {TransferState.SUBMITTED}
    assert transfers.count() == CHUNK
    assert TaxDeduction.objects.filter(package=package, state=DeductionState.RECEIVED).count() == len(items) - CHUNK
    time.sleep(3.5)  # the operator finishes applying the call the dead worker made
    tax.ecny.admin.set_fault("latency_ms", value=0)
    # The operator moved money the service has not recorded as settled.
    assert tax.balance(tax.treasury_wallet.wallet_id) - treasury_before == sum(i.amount_fen for i in items[:CHUNK])
    assert not transfers.filter(state=TransferState.SETTLED).exists()

    # A new worker, and the periodic jobs as beat runs them (later: the claimed transfers are old by then).
    worker_factory(queues="tax,treasury", **worker_env)
    later = timezone.now() + timezone.timedelta(minutes=10)
    assert transfer_services.recover_unconfirmed_transfers(now=later)["settled"] == CHUNK  # asked, not sent again
    assert services.finish_packages(now=later)["processed"] == 1  # the chunks never made: made, sent, decided
    wait_for(lambda: DeductionPackage.objects.filter(pk=package.pk, result_acknowledged=True).exists(), seconds=60,
             what="the package's 2102 sent by the new worker and acknowledged")

    package.refresh_from_db()
    assert (package.state, package.succ_num, package.all_num) == (PackageState.DONE, 10, 11)
    assert transfers.count() == 10 and set(transfers.values_list("state", flat=True)) == {TransferState.SETTLED}
    deductions = list(TaxDeduction.objects.filter(package=package).order_by("pk"))
    assert [d.state for d in deductions] == [DeductionState.SUCCEEDED] * 10 + [DeductionState.FAILED]
    assert deductions[-1].result_code == ResultCode.NOT_SIGNED and deductions[-1].transfer_id is None
    for payer, sent in zip(payers, items):
        assert tax.balance(payer.wallet_id) == 1_000_00 - sent.amount_fen  # debited once
    assert tax.balance(stranger.wallet_id) == 1_000_00
    total = sum(i.amount_fen for i in items[:10])
    assert tax.balance(tax.treasury_wallet.wallet_id) - treasury_before == total
    assert LedgerEntry.objects.filter(transfer__batch_ref=package.stream_key).count() == 20
    assert sorted(TreasuryEntry.objects.values_list("deduction_id", flat=True)) == [d.pk for d in deductions[:10]]
    assert check_ledger().problems == []
    (result,) = tips_sandbox.admin.results()  # one 2102, saying what happened to every item
    assert (result["ori_pack_no"], result["succ_num"], result["succ_amount_fen"]) == (message.pack_no, 10, total)
    assert [line["result"] for line in result["lines"]] == [ResultCode.SUCCESS] * 10 + [ResultCode.NOT_SIGNED]
