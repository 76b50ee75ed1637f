"""A day's check detail (3111) may come in several packages (ChildPackNum, CurPackNo): the day is reconciled only
when all of them have arrived. A package that cannot be one of the check's packages is refused, so that it cannot
make the day look complete; an intraday check (ChkAcctType 0) does not complete it either."""
import dataclasses

import pytest
from django.utils import timezone

from adapters.tips.interface import CheckLine, ResultCode
from tax.handlers import TaxHandler
from tax.reconciliation import services
from tax.reconciliation.models import CheckPackage, CheckRecord, RunState
from tests.tax.helpers import ENTRUST_DATE, OPERATOR_BANK_CODE, TAX_ORG_CODE
from tests.tax.reconciliation.conftest import check_detail

pytestmark = pytest.mark.django_db


def lines(*serials: str) -> list[CheckLine]:
    return [CheckLine(pay_op_bk_code=OPERATOR_BANK_CODE, pay_acct="0010000000000001", ori_tax_org_code=TAX_ORG_CODE,
                      ori_entrust_date=ENTRUST_DATE, ori_pack_no="", ori_tra_no=serial, amount_fen=100_00,
                      tax_vou_no="", tax_pay_name="", protocol_no="") for serial in serials]


def test_a_package_numbered_beyond_the_checks_package_count_is_refused():
    TaxHandler().receive_check_detail(check_detail(lines("00000001"), child_pack_num=3, cur_pack_no=1))
    TaxHandler().receive_check_detail(check_detail(lines("00000002"), child_pack_num=3, cur_pack_no=2))

    ack = TaxHandler().receive_check_detail(check_detail(lines("00000005"), child_pack_num=3, cur_pack_no=5))

    assert ack.result == ResultCode.PARSE_ERROR
    assert CheckPackage.objects.count() == 2 and CheckRecord.objects.count() == 2
    assert services.complete_packages(check_date=ENTRUST_DATE) is None  # package 3 has not come


def test_a_package_counting_the_checks_packages_otherwise_is_refused():
    TaxHandler().receive_check_detail(check_detail(lines("00000001"), child_pack_num=3, cur_pack_no=1))

    ack = TaxHandler().receive_check_detail(check_detail(lines("00000002"), child_pack_num=2, cur_pack_no=2))

    assert ack.result == ResultCode.PARSE_ERROR
    assert CheckPackage.objects.count() == 1
    assert services.complete_packages(check_date=ENTRUST_DATE) is None


def test_the_last_package_of_a_check_completes_the_day():
    TaxHandler().receive_check_detail(check_detail(lines("00000001"), child_pack_num=2, cur_pack_no=2))
    assert services.complete_packages(check_date=ENTRUST_DATE) is None

    ack = TaxHandler().receive_check_detail(check_detail(lines("00000002"), child_pack_num=2, cur_pack_no=1))

    assert ack.result == ResultCode.SUCCESS
    assert len(services.complete_packages(check_date=ENTRUST_DATE)) == 2


def test_a_later_check_order_may_come_in_another_number_of_packages():
    TaxHandler().receive_check_detail(check_detail(lines("00000001"), child_pack_num=1, cur_pack_no=1))

    ack = TaxHandler().receive_check_detail(check_detail(lines("00000001"), child_pack_num=2, cur_pack_no=1,
                                                         chk_acct_ord="0002"))

    assert ack.result == ResultCode.SUCCESS
    assert services.complete_packages(check_date=ENTRUST_DATE) is None  # the new check waits for its package 2


def test_an_intraday_check_does_not_complete_the_day():
    """ChkAcctType 0 is a check taken during the day (日间): only an end-of-day check (日切) holds the whole day."""
    intraday = dataclasses.replace(check_detail(lines("00000001"), chk_acct_ord="0001"), chk_acct_type="0")

    assert TaxHandler().receive_check_detail(intraday).result == ResultCode.SUCCESS
    assert services.complete_packages(check_date=ENTRUST_DATE) is None
    assert services.reconcile(check_date=ENTRUST_DATE, now=timezone.now()).state == RunState.WAITING

    TaxHandler().receive_check_detail(check_detail(lines("00000001", "00000002"), chk_acct_ord="0002"))
    (end_of_day,) = services.complete_packages(check_date=ENTRUST_DATE)
    assert CheckPackage.objects.get(pk=end_of_day).chk_acct_type == "1"
