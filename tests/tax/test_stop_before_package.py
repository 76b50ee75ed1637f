"""A package the tax system stopped (止付, 1123 for the whole package) before its 3102 reached us is void: the
package is acknowledged 24020 (9121) and nothing of it is stored or debited, as a reversal (1021) that comes
before its 3001 keeps that serial from being debited; an item stopped alone before its package came is never
debited either."""
import datetime as dt
import threading
import time

import pytest
from django.db import connection, connections
from django.utils import timezone

from adapters.tips.interface import BatchDeduction, ResultCode, StopPayment, TreasuryAccount
from tax import reversals, services
from tax.models import DeductionPackage, DeductionState, TaxDeduction
from tests import factories as f
from tests.tax.helpers import ENTRUST_DATE, TAX_ORG_CODE, TREASURY_CODE, Taxpayer, head, item
from treasury.trace.models import TraceEvent

pytestmark = pytest.mark.django_db

TREASURY = TreasuryAccount(payee_bank_no="011370100001", payee_org_code=TREASURY_CODE, payee_acct="3000000000000001",
                           payee_name="国家金库示范市中心支库")


def package(pack_no: str, *serials: str) -> BatchDeduction:
    payer = Taxpayer(name="示范商贸有限公司", taxpayer_id=f.make_uscc(), wallet_id=f.make_wallet_id(), personal=False)
    items = tuple(item(payer=payer, protocol_no="P-1", amount_fen=100_00, tra_no=serial) for serial in serials)
    return BatchDeduction(head=head("3102"), tax_org_code=TAX_ORG_CODE, entrust_date=ENTRUST_DATE, pack_no=pack_no,
                          all_num=len(items), all_amount_fen=sum(i.amount_fen for i in items), return_term=3,
                          treasury=TREASURY, items=items)


def stop(pack_no: str, stop_no: str, *, tra_no: str = "", pack_date: dt.date = ENTRUST_DATE):
    return reversals.stop_payment(message=StopPayment(
        head=head("1123"), tax_org_code=TAX_ORG_CODE, entrust_date=ENTRUST_DATE, stop_no=stop_no,
        ori_entrust_date=pack_date, ori_pack_no=pack_no, ori_tra_no=tra_no, stop_reason="纳税人已缴"),
        now=timezone.now())


def test_a_package_stopped_before_it_arrived_is_acknowledged_24020_and_never_stored():
    early = stop("20000001", "00000001")
    assert early.result == ResultCode.ORIGINAL_NOT_FOUND  # nothing to stop yet: the stop is kept all the same

    ack = services.receive_batch(message=package("20000001", "21000001", "21000002"), now=timezone.now())

    assert ack.result == ResultCode.ALREADY_STOPPED
    assert not DeductionPackage.objects.exists() and not TaxDeduction.objects.exists()
    again = services.receive_batch(message=package("20000001", "21000001", "21000002"), now=timezone.now())
    assert again.result == ResultCode.ALREADY_STOPPED and not TaxDeduction.objects.exists()


def test_a_stop_of_another_package_does_not_void_a_package_and_an_item_stopped_early_is_never_debited():
    stop("20000002", "00000002")  # another package number
    stop("20000003", "00000003", pack_date=ENTRUST_DATE - dt.timedelta(days=1))  # the same number, another day
    stop("20000003", "00000004", tra_no="21000003")  # one item, not the package

    ack = services.receive_batch(message=package("20000003", "21000003", "21000004"), now=timezone.now())

    assert ack.result == ResultCode.SUCCESS
    items = {d.tra_no: d for d in TaxDeduction.objects.filter(package__pack_no="20000003")}
    assert (items["21000003"].state, items["21000003"].result_code) == (DeductionState.FAILED, ResultCode.ALREADY_STOPPED)
    assert items["21000004"].state == DeductionState.RECEIVED  # deducted by the package's task
    event = TraceEvent.objects.get(stream_key=items["21000003"].package.stream_key, kind="tax.package.stopped")
    assert (event.amount_fen, event.data["items"]) == (100_00, ["21000003"])


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("needs_postgresql")
def test_a_stop_that_comes_while_its_package_is_being_stored_waits_for_it_and_stops_its_items(monkeypatch):
    """Without the two taken one at a time, the stop found no package (E0004, kept unlinked) while the package,
    stored a moment later without seeing the stop, was debited in full."""
    stored, release = threading.Event(), threading.Event()
    insert_items = services._insert_items

    def insert_and_wait(*args, **kwargs):
        insert_items(*args, **kwargs)
        stored.set()
        assert release.wait(30)

    monkeypatch.setattr(services, "_insert_items", insert_and_wait)
    monkeypatch.setattr(services, "_enqueue_process", lambda package_id: None)  # its items stay received
    answers = {}

    def in_thread(name, call):
        try:
            answers[name] = call()
        finally:
            connections.close_all()

    receiving = threading.Thread(target=in_thread, args=("ack", lambda: services.receive_batch(
        message=package("20000005", "21000005", "21000006"), now=timezone.now())))
    receiving.start()
    assert stored.wait(30)  # the package's transaction holds its items, not committed
    stopping = threading.Thread(target=in_thread, args=("stop", lambda: stop("20000005", "00000005")))
    stopping.start()
    while stopping.is_alive() and not _waiting_on_an_advisory_lock():
        time.sleep(0.01)
    release.set()
    receiving.join(30)
    stopping.join(30)

    assert answers["ack"].result == ResultCode.SUCCESS
    assert answers["stop"].result == ResultCode.SUCCESS  # it found the package, its items not yet debited
    assert set(TaxDeduction.objects.values_list("state", "result_code")) == {
        (DeductionState.FAILED, ResultCode.ALREADY_STOPPED)}


def _waiting_on_an_advisory_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'")
        return cursor.fetchone()[0] > 0
