"""Reconciliation over the real TIPS endpoint: the sandbox tax system sends real-time deductions (3001),
then the day's check detail (3111) built from what it got answered as paid, with planted differences; the
service stores it (9120 90000), reconciles the day and sends its 2111 back through the client."""
import pytest
from django.utils import timezone

from tax.reconciliation.models import CheckRecord, Outcome, ReconciliationResult, ReconciliationRun, RunState
from tests.tax.helpers import TAX_ORG_CODE

pytestmark = [pytest.mark.integration]


@pytest.fixture
def sent(tax, tips_sandbox):
    """Four deductions the sandbox tax system sent and the service debited."""
    deductions = []
    for amount in (100_00, 200_00, 300_00, 400_00):
        payer = tax.taxpayer(balance_fen=1_000_00)
        agreement = tax.sign(payer)
        answer = tips_sandbox.admin.register_agreement(
            tax_pay_code=payer.taxpayer_id, tax_pay_name=payer.name, pay_acct=payer.wallet_id,
            protocol_no=agreement.protocol_no, hand_org_name=payer.name, tax_org_code=TAX_ORG_CODE)
        assert answer["vc_result"] == "0", answer
        deduction = tips_sandbox.admin.send_deduction(protocol_no=agreement.protocol_no, amount_fen=amount)
        assert deduction["result"] == "90000", deduction
        deductions.append(deduction)
    return deductions


def test_a_planted_check_detail_is_reconciled_and_answered_with_2111(tax, tips_sandbox, sent):
    day = timezone.localdate()
    one, two, three, four = (d["tra_no"] for d in sent)
    answer = tips_sandbox.admin.send_check_detail(day, plant={
        "drop": [three], "change_amount": {two: 200_01}, "unknown": [{"tra_no": "99999998", "amount_fen": 77_00}],
        "duplicate": [four]})
    assert (answer["reply_msg_no"], answer["result"], answer["reply_signature_valid"]) == ("9120", "90000", True)
    assert CheckRecord.objects.count() == answer["all_num"] == 5  # one, two, four twice, the unknown serial

    run = ReconciliationRun.objects.get(check_date=day, tax_org_code="")
    assert run.state == RunState.DONE
    outcomes = dict(ReconciliationResult.objects.filter(run=run).values_list("tra_no", "outcome"))
    assert run.matched_count == 1 and run.totals[Outcome.MATCHED]["count"] == 1
    assert one not in outcomes  # matched: counted, not written as a result row
    assert outcomes == {two: Outcome.AMOUNT_MISMATCH, three: Outcome.MISSING_TAX,
                        four: Outcome.DUPLICATE_TAX, "99999998": Outcome.MISSING_OURS}
    assert run.reply_sent_at is not None
    [result] = tips_sandbox.admin.check_results()
    assert (result["ori_chk_date"], result["ori_chk_acct_ord"], result["result"]) == (f"{day:%Y%m%d}", "0001", "1")

    again = tips_sandbox.admin.send_check_detail(day, plant={"drop": [three]})
    assert again["result"] == "94051"  # the day's package was received already


def test_an_unknown_serial_to_drop_is_refused_by_the_sandbox(tax, tips_sandbox, sent):
    from adapters.tips.sandbox.admin import TipsSandboxAdminError

    with pytest.raises(TipsSandboxAdminError):
        tips_sandbox.admin.send_check_detail(timezone.localdate(), plant={"drop": ["12345678"]})
    assert not CheckRecord.objects.exists()
