"""The tax domain behind the real TIPS endpoint: the sandbox tax system sends signed messages over SOAP
to the live service (9114, 3001, 3102) and receives the service's 2102; money moves at the sandbox
operator exactly once."""
import pytest

from tax.models import AgreementState, TaxDeduction
from tests.tax.helpers import OPERATOR_BANK_CODE, TAX_ORG_CODE
from treasury.services.ledger import check_ledger

pytestmark = pytest.mark.django_db(transaction=True)


def test_agreement_verified_deduction_and_package_through_the_tips_endpoint(tax, tips_sandbox):
    payer = tax.taxpayer(balance_fen=10_000_00)
    agreement = tax.sign(payer)
    codes = {"tax_org_code": TAX_ORG_CODE, "pay_op_bk_code": OPERATOR_BANK_CODE, "pay_bk_code": OPERATOR_BANK_CODE}

    reply = tips_sandbox.admin.register_agreement(tax_pay_code=payer.taxpayer_id, tax_pay_name=payer.name,
                                                  pay_acct=payer.wallet_id, protocol_no=agreement.protocol_no, **codes)
    assert (reply["vc_result"], reply["reply_signature_valid"]) == ("0", True), reply
    agreement.refresh_from_db()
    assert agreement.state == AgreementState.ACTIVE

    answer = tips_sandbox.admin.send_deduction(protocol_no=agreement.protocol_no, amount_fen=1_234_56)
    assert answer["result"] == "90000", answer
    assert tax.balance(payer.wallet_id) == 10_000_00 - 1_234_56
    assert tax.balance(tax.treasury_wallet.wallet_id) == 1_234_56

    ack = tips_sandbox.admin.send_package(protocol_no=agreement.protocol_no, count=3, amount_fen=100_00)
    assert ack["result"] == "90000", ack
    results = tips_sandbox.admin.results()  # Celery eager: the package was processed and answered
    assert len(results) == 1
    assert (results[0]["succ_num"], results[0]["succ_amount_fen"]) == (3, 300_00), results[0]
    assert tax.balance(payer.wallet_id) == 10_000_00 - 1_234_56 - 300_00
    assert TaxDeduction.objects.count() == 4
    assert check_ledger().problems == []
