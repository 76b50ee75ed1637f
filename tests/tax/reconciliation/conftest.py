import dataclasses

import pytest
from django.utils import timezone

from adapters.tips.interface import CheckDetail, CheckLine
from tax.handlers import TaxHandler
from tax.models import DeductionState, TaxDeduction
from tests.tax.helpers import ENTRUST_DATE, OPERATOR_BANK_CODE, TAX_ORG_CODE, head, real_time


def check_lines(deductions) -> list[CheckLine]:
    return [CheckLine(pay_op_bk_code=OPERATOR_BANK_CODE, pay_acct=d.pay_acct, ori_tax_org_code=d.tax_org_code,
                      ori_entrust_date=d.entrust_date, ori_pack_no="", ori_tra_no=d.tra_no, amount_fen=d.amount_fen,
                      tax_vou_no=d.tax_vou_no, tax_pay_name=d.tax_pay_name, protocol_no=d.protocol_no)
            for d in deductions]


def check_detail(lines, *, child_pack_num=1, cur_pack_no=1, chk_acct_ord="0001") -> CheckDetail:
    return CheckDetail(head=head("3111"), pay_bk_code=OPERATOR_BANK_CODE, chk_date=ENTRUST_DATE,
                       chk_acct_ord=chk_acct_ord, payee_bank_no="011370100001", chk_acct_type="1",
                       all_num=len(lines), all_amount_fen=sum(line.amount_fen for line in lines),
                       child_pack_num=child_pack_num, cur_pack_no=cur_pack_no, lines=tuple(lines))


def deduct_each(tax, wanted) -> dict[str, TaxDeduction]:
    """{name: deduction} of one real-time deduction per (name, payer's balance, amount), each by a new taxpayer
    with a verified agreement, through the sandbox operator."""
    deductions = {}
    for name, balance, amount in wanted:
        payer = tax.taxpayer(balance_fen=balance)
        agreement = tax.signed_and_verified(payer)
        message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=amount)
        TaxHandler().deduct_real_time(message)
        deductions[name] = TaxDeduction.objects.get(tra_no=message.item.tra_no)
    return deductions


@pytest.fixture
def day(tax):
    """Nine real-time deductions through the sandbox operator: seven succeed, two fail (no money)."""
    deductions = deduct_each(tax, [
        ("matched", 500_00, 100_00), ("amount", 500_00, 200_00), ("dropped", 500_00, 300_00),
        ("dup_tax", 500_00, 400_00), ("dup_operator", 500_00, 150_00), ("no_operator", 500_00, 250_00),
        ("matched2", 500_00, 50_00), ("ours_failed", 10_00, 100_00), ("both_failed", 10_00, 100_00)])
    assert deductions["ours_failed"].state == DeductionState.FAILED
    assert deductions["matched"].state == DeductionState.SUCCEEDED
    return deductions


def planted_lines(day) -> list[CheckLine]:
    """What the tax system sends: every deduction it holds as paid, with discrepancies planted."""
    paid = [d for name, d in day.items() if name not in ("dropped", "both_failed")]
    lines = check_lines(paid)
    lines = [dataclasses.replace(line, amount_fen=line.amount_fen + 1)
             if line.ori_tra_no == day["amount"].tra_no else line for line in lines]
    lines.append(next(line for line in lines if line.ori_tra_no == day["dup_tax"].tra_no))
    lines.append(dataclasses.replace(lines[0], ori_tra_no="99999999", amount_fen=77_00))  # unknown serial
    return lines


def planted_statement(day):
    """The operator's statement of the day, with one line duplicated and one dropped."""
    from tax.reconciliation import services

    rows = services.fetch_statement(check_date=timezone.localdate())
    dup = next(r for r in rows if r[-1] == day["dup_operator"].tra_no)
    rows = [r for r in rows if r[-1] != day["no_operator"].tra_no]
    return [*rows, (dup[0], dup[1] + "-again", *dup[2:])]


__all__ = ["ENTRUST_DATE", "TAX_ORG_CODE", "check_detail", "check_lines", "planted_lines", "planted_statement"]


@pytest.fixture(autouse=True)
def check_result_outbox(request, monkeypatch):
    """Records the 2111s the engine sends after a run, unless the test talks to the sandbox tax system."""
    sent = []
    if "tips_sandbox" not in request.fixturenames:
        from adapters.tips.interface import Acknowledgement
        from tax import services as tax_services

        class Outbox:
            def send_check_result(self, result):
                sent.append(result)
                return Acknowledgement(ori_msg_id="0" * 20, result="90000")

        monkeypatch.setattr(tax_services, "_tips", lambda: Outbox())
    return sent
