"""Whether a taxpayer's number is a person's decides whether pages mask their name, number and wallet."""
from types import SimpleNamespace

import pytest
from stdnum.cn import ric, uscc

from tax.models import DeductionKind
from tax.views import _shown_taxpayer, shown_refund

# A Beijing resident ID whose 18 digits also pass the credit code's checks (about one in fifty do).
BOTH = "110105199005171188"
ORGANIZATION = "91310115591693856A"


def test_the_number_used_is_both():
    assert ric.is_valid(BOTH) and uscc.is_valid(BOTH) and not ric.is_valid(ORGANIZATION)


@pytest.mark.parametrize("taxpayer_id, person", [(BOTH, True), (ORGANIZATION, False), ("", True)])
def test_a_refund_is_masked_when_its_taxpayer_is_a_person(taxpayer_id, person):
    refund = SimpleNamespace(taxpayer_id=taxpayer_id, tax_pay_name="欧阳明远", payee_name="欧阳明远",
                             payee_acct="1010000000000003")
    shown = shown_refund(refund)
    assert (shown["tax_pay_name"] == "欧阳明远") is not person
    assert (shown["payee_acct"] == "1010000000000003") is not person
    if taxpayer_id:
        assert (shown["taxpayer_id"] == taxpayer_id) is not person


def test_a_deduction_without_agreement_is_masked_when_its_taxpayer_is_a_person():
    shown = _shown_taxpayer(kind=DeductionKind.REAL_TIME, taxpayer_id=BOTH, tax_pay_name="欧阳明远",
                            pay_acct="1010000000000003", agreement_kind=None, agreement_taxpayer_id=None)
    assert shown["tax_pay_name"] != "欧阳明远" and shown["taxpayer_id"] != BOTH
