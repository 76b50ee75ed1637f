"""Treasury entry detail (入库流水, 3139): the day's treasury entries sent to the sandbox tax system over the real
TIPS client, a reversed entry as a negative line, sent again only when the day changed."""
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from adapters.tips.interface import ResultCode
from tax import entries
from tax.models import EntryDetailPackage
from tests.tax.helpers import OPERATOR_BANK_CODE, TAX_ORG_CODE, TREASURY_CODE

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_days_entries_reach_the_tax_system_and_are_sent_again_when_they_change(tax, tips_sandbox):
    payer = tax.taxpayer(balance_fen=10_000_00)
    agreement = tax.sign(payer)
    assert tips_sandbox.admin.register_agreement(
        tax_pay_code=payer.taxpayer_id, tax_pay_name=payer.name, pay_acct=payer.wallet_id,
        protocol_no=agreement.protocol_no, tax_org_code=TAX_ORG_CODE, pay_op_bk_code=OPERATOR_BANK_CODE,
        pay_bk_code=OPERATOR_BANK_CODE)["vc_result"] == "0"
    paid = [tips_sandbox.admin.send_deduction(protocol_no=agreement.protocol_no, amount_fen=amount)
            for amount in (100_00, 250_00)]
    assert {p["result"] for p in paid} == {ResultCode.SUCCESS}
    day = timezone.localdate()

    assert entries.send_entry_details(entry_date=day, now=timezone.now()) == {"sent": 1}
    (detail,) = tips_sandbox.admin.entry_details()
    assert (detail["tax_org_code"], detail["tre_code"], detail["in_tre_date"]) == (
        TAX_ORG_CODE, tips_sandbox_treasury_code(), f"{day:%Y%m%d}")
    assert (detail["all_num"], detail["all_amount_fen"], detail["child_pack_num"]) == (2, 350_00, 1)
    assert sorted(line["amount_fen"] for line in detail["lines"]) == [100_00, 250_00]
    assert all(line["exp_tax_vou_no"] for line in detail["lines"])
    assert entries.send_entry_details(entry_date=day, now=timezone.now()) == {"unchanged": 1}

    tips_sandbox.admin.send_reversal(tra_no=paid[0]["tra_no"])  # the reversal's negative entry is dated today
    out = StringIO()
    call_command("send_tax_entries", "--date", day.isoformat(), stdout=out)
    assert "sent 1" in out.getvalue()
    (detail,) = tips_sandbox.admin.entry_details()
    assert (detail["all_num"], detail["all_amount_fen"]) == (3, 250_00)
    assert sorted(line["amount_fen"] for line in detail["lines"]) == [-100_00, 100_00, 250_00]
    package = EntryDetailPackage.objects.get()
    assert package.attempts == 2 and package.acknowledged_at is not None and package.error == ""


def tips_sandbox_treasury_code() -> str:
    """Deductions the sandbox sends name its own treasury (TurnAccount PayeeOrgCode)."""
    from adapters.tips.sandbox.app import TREASURY

    return TREASURY.payee_org_code


def test_an_unreachable_tax_system_leaves_the_package_to_send_again(tax, settings):
    from adapters.tips.client import get_tips_client

    settings.TIPS_SYSTEM_URL, settings.TIPS_RETRIES, settings.TIPS_TIMEOUT_SECONDS = "http://127.0.0.1:9/", 0, 1
    get_tips_client.cache_clear()
    try:
        from tax.models import TaxDeduction, TreasuryEntry

        deduction = TaxDeduction.objects.create(
            kind="real_time", tax_org_code=TAX_ORG_CODE, entrust_date=timezone.localdate(), tra_no="00000001",
            pay_acct="0", amount_fen=5_00, tax_vou_no="V1", created_at=timezone.now(), state="succeeded")
        TreasuryEntry.objects.create(deduction=deduction, entry_date=timezone.localdate(), treasury_code=TREASURY_CODE,
                                     tax_org_code=TAX_ORG_CODE, budget_type="1", budget_level_code="1",
                                     amount_fen=5_00, central_fen=5_00, local_fen=0)
        assert entries.send_entry_details(entry_date=timezone.localdate(), now=timezone.now()) == {"failed": 1}
        package = EntryDetailPackage.objects.get()
        assert package.acknowledged_at is None and "unreachable" in package.error
    finally:
        get_tips_client.cache_clear()
