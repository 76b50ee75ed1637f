"""A package the tax system stopped (止付, 1123 for the whole package) before its 3102 reached us is void: the
package is acknowledged 24020 (9121) and nothing of it is stored or debited, as a reversal (1021) that comes
before its 3001 keeps that serial from being debited; an item stopped alone before its package came is never
debited either."""
import datetime as dt

import pytest
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
