"""Own tax payments (an individual pays a voucher at the counter): the taxpayer's ID is checked against
the wallet's holder on record, never used to register a wallet; a voucher paid once cannot be paid again
with other details. Against the sandbox operator."""
from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from tax import services
from tax.models import DeductionState, TaxDeduction
from tests import factories as f
from tests.tax.helpers import TAX_ORG_CODE
from tests.tax.test_pages_api import API, api_as, logged_in
from treasury.models import Wallet


def pay(person, *, taxpayer_id=None, tax_vou_no="320261100001", amount_fen=500_00, wallet_id=None):
    return services.pay_own_tax(wallet_id=wallet_id or person.wallet_id, taxpayer_id=taxpayer_id or person.taxpayer_id,
                                taxpayer_name=person.name, tax_org_code=TAX_ORG_CODE, tax_vou_no=tax_vou_no,
                                amount_fen=amount_fen, now=timezone.now())


def test_a_wallet_new_here_is_not_bound_to_a_typed_id(tax):
    person = tax.taxpayer(personal=True, balance_fen=2_000_00)
    stranger_id = f.make_resident_id()
    with pytest.raises(services.TaxError) as exc:
        pay(person, taxpayer_id=stranger_id)
    assert exc.value.code == "holder_unverified"
    assert not Wallet.objects.filter(wallet_id=person.wallet_id).exists()
    assert not TaxDeduction.objects.exists() and tax.balance(person.wallet_id) == 2_000_00
    # Its real holder can still sign an agreement for it, and then pay from it.
    tax.sign(person)
    assert pay(person).state == DeductionState.SUCCEEDED
    assert tax.balance(person.wallet_id) == 1_500_00


def test_another_persons_id_is_refused_for_a_known_wallet(tax):
    person = tax.taxpayer(personal=True, balance_fen=2_000_00)
    tax.sign(person)
    with pytest.raises(services.TaxError) as exc:
        pay(person, taxpayer_id=f.make_resident_id())
    assert exc.value.code == "holder_mismatch"
    assert not TaxDeduction.objects.exists() and tax.balance(person.wallet_id) == 2_000_00


def test_the_same_voucher_with_other_details_is_a_conflict(tax):
    person = tax.taxpayer(personal=True, balance_fen=2_000_00)
    other = tax.taxpayer(personal=True, balance_fen=2_000_00)
    tax.sign(person)
    tax.sign(other)
    first = pay(person)
    assert pay(person).pk == first.pk
    for changed in (dict(amount_fen=1_00), dict(wallet_id=other.wallet_id, taxpayer_id=other.taxpayer_id)):
        with pytest.raises(services.TaxError) as exc:
            pay(person, **changed)
        assert exc.value.code == "idempotency_conflict" and "already paid" in str(exc.value)
    assert TaxDeduction.objects.count() == 1
    assert (tax.balance(person.wallet_id), tax.balance(other.wallet_id)) == (1_500_00, 2_000_00)


def test_a_voucher_an_attempt_paid_nothing_of_is_paid_by_the_next(tax):
    """Not enough money the first time (24007, nothing debited): the voucher is not used up. The next attempt,
    from the same wallet once it has the money or from another of the person's, is debited under a serial of its
    own; after that the voucher is paid and asking again returns that payment."""
    person = tax.taxpayer(personal=True, balance_fen=100_00)
    tax.sign(person)
    first = pay(person)
    assert (first.state, first.result_code, first.tra_no) == (DeductionState.FAILED, "24007", "V320261100001")
    tax.ecny.admin.fund(wallet_id=person.wallet_id, amount_fen=1_000_00)

    second = pay(person)
    assert (second.state, second.tra_no) == (DeductionState.SUCCEEDED, "V320261100001/2")
    assert pay(person).pk == second.pk
    with pytest.raises(services.TaxError) as exc:
        pay(person, amount_fen=1_00)
    assert exc.value.code == "idempotency_conflict"
    assert tax.balance(person.wallet_id) == 1_100_00 - 500_00
    assert pay(person, tax_vou_no="32026110000").tra_no == "V32026110000"  # a voucher that is a prefix: its own


def test_page_and_api_show_the_voucher_conflict(tax):
    person = tax.taxpayer(personal=True, balance_fen=2_000_00)
    tax.sign(person)
    data = {"tax_org_code": TAX_ORG_CODE, "taxpayer_id": person.taxpayer_id, "taxpayer_name": person.name,
            "wallet_id": person.wallet_id, "tax_vou_no": "310000000000000001", "amount": "321.50",
            "tax_type_name": "个人所得税"}
    client = logged_in(tax.staff)
    assert client.post(reverse("tax:own-tax"), data).status_code == 302
    page = client.post(reverse("tax:own-tax"), {**data, "amount": "300.00"})
    assert page.status_code == 400 and "already paid with another wallet, taxpayer or amount" in page.content.decode()
    assert page.context["form"].errors["tax_vou_no"]  # said under the voucher number
    wrong_name = client.post(reverse("tax:own-tax"), {**data, "tax_vou_no": "310000000000000002", "taxpayer_name": "李四"})
    assert wrong_name.status_code == 400 and "not the wallet holder" in wrong_name.context["form"].errors["taxpayer_name"][0]
    api = api_as(tax.staff).post(f"{API}/own-payments/", {**data, "amount_fen": 300_00}, format="json")
    assert api.status_code == 409 and api.json()["code"] == "idempotency_conflict"
    assert TaxDeduction.objects.get().amount_fen == 321_50
    assert tax.balance(person.wallet_id) == 2_000_00 - 321_50


def test_a_voucher_number_is_letters_and_digits_as_tips_writes_it(tax):
    person = tax.taxpayer(personal=True, balance_fen=2_000_00)
    tax.sign(person)
    for bad in ("", "税票 123", "3202-611", "1" * 21):
        with pytest.raises(services.TaxError) as exc:
            pay(person, tax_vou_no=bad)
        assert exc.value.code == "tax_vou_no", bad
    assert not TaxDeduction.objects.exists() and tax.balance(person.wallet_id) == 2_000_00
