"""A day's check detail comes as a package set per payee bank (one per treasury); each is answered with its own
2111 (MsgReturn2111 names OriPayeeBankNo), which reports that bank's discrepancies only."""
import dataclasses
import datetime as dt

import pytest
from django.utils import timezone

from tax.handlers import TaxHandler
from tax.models import DeductionState, TaxDeduction
from tax.reconciliation import services
from tax.reconciliation.models import ReconciliationRun
from tests.tax.reconciliation.conftest import ENTRUST_DATE, check_detail, check_lines, deduct_each

BANK_A, BANK_B = "011370100001", "011370200002"
TREASURY_B = "3702000000"  # a second treasury (a district sub-treasury), paid through bank B


@pytest.fixture
def two_treasuries(tax):
    """Four deductions: a1 and a2 of the first treasury, b1 and b2 of the second (their treasury code set here:
    the reconciliation reads only the code)."""
    deductions = deduct_each(tax, [(name, 1_000_00, amount)
                                   for name, amount in (("a1", 100_00), ("a2", 200_00), ("b1", 300_00), ("b2", 400_00))])
    assert {d.state for d in deductions.values()} == {DeductionState.SUCCEEDED}
    TaxDeduction.objects.filter(pk__in=[deductions["b1"].pk, deductions["b2"].pk]).update(treasury_code=TREASURY_B)
    return deductions


def test_each_payee_bank_is_answered_with_its_own_discrepancies(two_treasuries, check_result_outbox):
    d = two_treasuries
    bank_a = check_detail(check_lines([d["a1"], d["a2"]]))
    b_lines = [dataclasses.replace(line, amount_fen=line.amount_fen + 1) for line in check_lines([d["b1"]])]
    bank_b = dataclasses.replace(check_detail(b_lines), payee_bank_no=BANK_B)
    TaxHandler().receive_check_detail(bank_a)
    TaxHandler().receive_check_detail(bank_b)  # the day is reconciled again, and answered per bank

    run = ReconciliationRun.objects.get(check_date=ENTRUST_DATE, tax_org_code="")
    assert run.discrepancy_count == 2  # b1's amount differs; b2 is not listed by the tax system
    answers = {a.ori_payee_bank_no: (a.result, a.add_word) for a in services.check_results(run=run)}
    # b2 is nobody's listed serial: its treasury's deductions are listed by bank B, so it is bank B's.
    assert answers == {BANK_A: ("0", ""), BANK_B: ("1", "差异 2 笔 (discrepancies)")}
    assert [(a.ori_payee_bank_no, a.result) for a in check_result_outbox[-2:]] == [(BANK_A, "0"), (BANK_B, "1")]
    assert run.reply_sent_text == f"{BANK_A} 0001 0; {BANK_B} 0001 1 差异 2 笔 (discrepancies)"

    sent = len(check_result_outbox)
    services.send_check_result(run_id=run.pk, now=timezone.now())  # the same answers: nothing sent again
    assert len(check_result_outbox) == sent


def test_a_difference_no_bank_can_be_placed_is_reported_to_every_bank(two_treasuries, check_result_outbox):
    d = two_treasuries
    TaxDeduction.objects.filter(pk=d["b2"].pk).update(treasury_code="3709990000")  # a treasury nobody lists
    TaxHandler().receive_check_detail(check_detail(check_lines([d["a1"], d["a2"]])))
    TaxHandler().receive_check_detail(dataclasses.replace(check_detail(check_lines([d["b1"]])), payee_bank_no=BANK_B))

    run = ReconciliationRun.objects.get(check_date=ENTRUST_DATE, tax_org_code="")
    assert run.discrepancy_count == 1  # b2, not listed
    assert [(a.ori_payee_bank_no, a.result) for a in services.check_results(run=run)] == [(BANK_A, "1"), (BANK_B, "1")]


def test_a_bank_that_sends_the_day_again_is_answered_from_its_latest_package_only(two_treasuries, check_result_outbox):
    d = two_treasuries
    # Bank A's first check lists b1 (a serial of the second treasury) by mistake; its second check does not.
    TaxHandler().receive_check_detail(check_detail(check_lines([d["a1"], d["a2"], d["b1"]])))
    TaxHandler().receive_check_detail(dataclasses.replace(check_detail(check_lines([d["b2"]])), payee_bank_no=BANK_B))
    run = ReconciliationRun.objects.get(check_date=ENTRUST_DATE, tax_org_code="")
    first, second = (check_detail(check_lines([d[name]]), chk_acct_ord="0002", child_pack_num=2, cur_pack_no=n)
                     for n, name in ((1, "a1"), (2, "a2")))
    TaxHandler().receive_check_detail(first)
    assert services.check_results(run=run) == []  # nothing to answer while bank A's second check is arriving
    TaxHandler().receive_check_detail(second)

    run.refresh_from_db()
    assert run.discrepancy_count == 1  # b1, listed by nobody's latest package
    answers = [(a.ori_payee_bank_no, a.ori_chk_acct_ord, a.result) for a in services.check_results(run=run)]
    # b1 is bank B's by its treasury: bank A's first package, which listed it, no longer places it.
    assert answers == [(BANK_A, "0002", "0"), (BANK_B, "0001", "1")]
    assert [(a.ori_payee_bank_no, a.ori_chk_acct_ord, a.result) for a in check_result_outbox[-2:]] == answers


def test_a_check_sent_again_under_a_new_order_gets_its_own_2111_even_when_the_answer_is_the_same(
        two_treasuries, check_result_outbox):
    d = two_treasuries
    lines = check_lines([d[name] for name in ("a1", "a2", "b1", "b2")])
    TaxHandler().receive_check_detail(check_detail(lines))
    assert [(a.ori_chk_acct_ord, a.result) for a in check_result_outbox] == [("0001", "0")]
    TaxHandler().receive_check_detail(check_detail(lines, chk_acct_ord="0002"))  # the same day, sent again
    assert [(a.ori_chk_acct_ord, a.result) for a in check_result_outbox] == [("0001", "0"), ("0002", "0")]


def test_a_2111_the_tax_system_did_not_take_is_noted_and_every_bank_is_answered_again(two_treasuries, monkeypatch):
    from adapters.tips.interface import Acknowledgement, TipsUnavailable
    from tax import services as tax_services

    sent = []

    class TaxSystem:
        down = {BANK_A}  # these banks' 2111s find the tax system unreachable
        refusing = {BANK_B}  # these are refused with a result code

        def send_check_result(self, result):
            bank = result.ori_payee_bank_no
            sent.append(bank)
            if bank in self.down:
                raise TipsUnavailable("connection refused")
            return Acknowledgement(ori_msg_id="0" * 20, result="94999" if bank in self.refusing else "90000",
                                   add_word="busy")

    tax_system = TaxSystem()
    monkeypatch.setattr(tax_services, "_tips", lambda: tax_system)
    d = two_treasuries
    TaxHandler().receive_check_detail(check_detail(check_lines([d["a1"], d["a2"]])))
    TaxHandler().receive_check_detail(dataclasses.replace(check_detail(check_lines([d["b1"], d["b2"]])),
                                                          payee_bank_no=BANK_B))
    run = ReconciliationRun.objects.get(check_date=ENTRUST_DATE, tax_org_code="")
    assert sent[-2:] == [BANK_A, BANK_B]
    assert run.reply_sent_at is None and run.reply_fault_code == "94999"
    assert run.note.startswith(f"2111 {BANK_A}: 税务系统暂不可达") and f"2111 {BANK_B}: 94999 busy" in run.note
    before = len(sent)
    assert services.resend_check_results(now=timezone.now()) == 0 and len(sent) == before  # refused: for a person

    tax_system.refusing = set()
    run = services.send_check_result(run_id=run.pk, now=timezone.now())  # a person runs the day again
    assert sent[-2:] == [BANK_A, BANK_B]  # both again: the tax system answers 94051 to one it already has
    assert run.reply_sent_at is None and run.reply_fault_code == "" and run.note.startswith(f"2111 {BANK_A}: ")
    before = len(sent)
    assert services.resend_check_results(now=timezone.now()) == 1  # the periodic resend: still unreachable
    assert sent[before:] == [BANK_A, BANK_B]

    tax_system.down = set()
    assert services.resend_check_results(now=timezone.now()) == 1
    run.refresh_from_db()
    assert run.reply_sent_at is not None and run.note == ""
    assert run.reply_sent_text == f"{BANK_A} 0001 0; {BANK_B} 0001 0"
    before = len(sent)
    assert services.resend_check_results(now=timezone.now()) == 0 and len(sent) == before  # acknowledged: left alone
    ReconciliationRun.objects.filter(pk=run.pk).update(reply_sent_at=None)
    assert services.resend_check_results(now=timezone.now() + dt.timedelta(days=8)) == 0  # a week on: not unasked


def test_a_refusal_code_longer_than_the_column_is_kept_to_its_length(two_treasuries, monkeypatch):
    """The tax system's fault code may be 32 characters (tips_soap.xsd) and the run keeps 10: stored whole, it
    failed on PostgreSQL (value too long) and the run's 2111 was neither noted nor left to a person. The package
    and refund results already kept the first ten."""
    from adapters.tips.interface import TipsFault
    from tax import services as tax_services

    class TaxSystem:
        def send_check_result(self, result):
            raise TipsFault("refused", code="DOCUMENT_SCHEMA_INVALID_AT_LINE_1")

    monkeypatch.setattr(tax_services, "_tips", lambda: TaxSystem())
    d = two_treasuries
    TaxHandler().receive_check_detail(check_detail(check_lines([d["a1"], d["a2"], d["b1"], d["b2"]])))
    run = ReconciliationRun.objects.get(check_date=ENTRUST_DATE, tax_org_code="")
    assert run.reply_sent_at is None and run.reply_fault_code == "DOCUMENT_S"
    assert "DOCUMENT_SCHEMA_INVALID_AT_LINE_1" not in run.reply_fault_code and run.note.startswith("2111 ")
