"""An individual's own taxes (self-service, 我的纳税): signed in, they pay a tax voucher from one of their own
personal wallets registered here (the taxpayer is their person, never typed) and see the taxes paid from their
wallets or under their agreements and the refunds paid to them, with receipts. Against the sandbox operator."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from adapters.tips.interface import ResultCode
from tax import services
from tax.handlers import TaxHandler
from tax.models import DeductionKind, DeductionState, Refund, RefundOrder, TaxDeduction
from tests import factories as f
from tests.clients import api_as, logged_in
from tests.tax.helpers import TAX_ORG_CODE, real_time
from tests.tax.test_refunds import order, refund_item, refunds  # noqa: F401 (the fixture)
from treasury.access import roles
from treasury.access.models import PersonalAccount
from treasury.models import Person

API = "/api/v1/tax/my-payments/"


def individual(tax, *, balance_fen: int = 2_000_00):
    """A taxpayer with a personal wallet at the operator, registered here by an agreement, and the user who is
    that person (role individual, linked by PersonalAccount)."""
    payer = tax.taxpayer(personal=True, balance_fen=balance_fen)
    agreement = tax.signed_and_verified(payer)
    user = f.make_user(role=None)
    user.groups.add(Group.objects.get_or_create(name=roles.INDIVIDUAL)[0])
    PersonalAccount.objects.create(user=user, person=Person.objects.get(resident_id=payer.taxpayer_id))
    return payer, agreement, user


def voucher(**overrides) -> dict:
    return {"wallet_id": "", "tax_org_code": TAX_ORG_CODE, "tax_vou_no": "320261100001", "amount": "321.50",
            "tax_type_name": "个人所得税", **overrides}


def test_an_individual_pays_a_voucher_from_their_own_wallet_once(tax):
    payer, _, user = individual(tax)
    client = logged_in(user)
    page = client.get(reverse("tax:mine")).content.decode()
    assert 'data-testid="my-tax-form"' in page and payer.wallet_id in page and "csrfmiddlewaretoken" in page
    paid = client.post(reverse("tax:mine"), voucher(wallet_id=payer.wallet_id), follow=True)
    assert paid.status_code == 200 and "缴税成功 · 税票" in paid.content.decode()
    deduction = TaxDeduction.objects.get()
    assert (deduction.kind, deduction.state, deduction.result_code) == (
        DeductionKind.OWN, DeductionState.SUCCEEDED, ResultCode.SUCCESS)
    # The taxpayer is the user's person, not anything typed.
    assert (deduction.taxpayer_id, deduction.tax_pay_name, deduction.pay_acct) == (
        payer.taxpayer_id, payer.name, payer.wallet_id)
    assert deduction.tax_types[0]["tax_type_name"] == "个人所得税"
    assert tax.balance(payer.wallet_id) == 2_000_00 - 321_50
    html = paid.content.decode()
    assert f'data-deduction="{deduction.pk}"' in html and 'data-testid="receipt-link"' in html
    # The same voucher again: no second debit.
    client.post(reverse("tax:mine"), voucher(wallet_id=payer.wallet_id))
    assert TaxDeduction.objects.count() == 1 and tax.balance(payer.wallet_id) == 2_000_00 - 321_50


def test_only_their_own_registered_wallet_can_pay(tax):
    payer, _, user = individual(tax)
    other, _, _ = individual(tax)
    with pytest.raises(services.TaxError) as exc:
        services.pay_my_tax(user=user, wallet_id=other.wallet_id, tax_org_code=TAX_ORG_CODE, tax_vou_no="1",
                            amount_fen=1_00, now=timezone.now())
    assert exc.value.code == "not_your_wallet"
    page = logged_in(user).post(reverse("tax:mine"), voucher(wallet_id=other.wallet_id))
    assert page.status_code == 400 and 'data-testid="my-tax-form"' in page.content.decode()  # not offered
    api = api_as(user).post(API, {"wallet_id": other.wallet_id, "tax_org_code": TAX_ORG_CODE, "tax_vou_no": "1",
                                  "amount_fen": 1_00}, format="json")
    assert api.status_code == 403 and api.json()["code"] == "not_your_wallet"
    bad = logged_in(user).post(reverse("tax:mine"), voucher(wallet_id=payer.wallet_id, tax_org_code="99999999999"))
    assert bad.status_code == 400
    assert not TaxDeduction.objects.exists()
    assert (tax.balance(payer.wallet_id), tax.balance(other.wallet_id)) == (2_000_00, 2_000_00)
    # A user who is not an individual has no wallets to pay from.
    with pytest.raises(services.TaxError) as exc:
        services.pay_my_tax(user=tax.staff, wallet_id=payer.wallet_id, tax_org_code=TAX_ORG_CODE, tax_vou_no="1",
                            amount_fen=1_00, now=timezone.now())
    assert exc.value.code == "individual_required"


def test_each_sees_only_their_own_taxes_with_those_deducted_under_their_agreement(tax):
    payer, agreement, user = individual(tax)
    other_payer, _, other = individual(tax)
    TaxHandler().deduct_real_time(real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=100_00))
    api = api_as(user)
    made = api.post(API, {"wallet_id": payer.wallet_id, "tax_org_code": TAX_ORG_CODE, "tax_vou_no": "320261100009",
                          "amount_fen": 50_00}, format="json")
    assert made.status_code == 201 and made.json()["kind"] == DeductionKind.OWN
    assert services.pay_my_tax(user=other, wallet_id=other_payer.wallet_id, tax_org_code=TAX_ORG_CODE,
                               tax_vou_no="320261100010", amount_fen=7_00, now=timezone.now()).state == "succeeded"
    mine = api.get(API).json()["results"]
    assert sorted((d["kind"], d["amount_fen"]) for d in mine) == [("own", 50_00), ("real_time", 100_00)]
    assert [d["amount_fen"] for d in api_as(other).get(API).json()["results"]] == [7_00]
    page = logged_in(other).get(reverse("tax:mine")).content.decode()
    assert page.count("data-deduction=") == 1
    # Staff and employers have no "my tax": the page and the API are an individual's.
    assert logged_in(tax.staff).get(reverse("tax:mine")).status_code == 403
    assert api_as(tax.staff).get(API).status_code == 403
    assert api_as(f.make_user(role=roles.EMPLOYER_OPERATOR)).post(API, {}, format="json").status_code == 403


def test_an_individual_with_no_wallet_here_is_told_how_one_is_registered(tax):
    user = f.make_user(role=None)
    user.groups.add(Group.objects.get_or_create(name=roles.INDIVIDUAL)[0])
    PersonalAccount.objects.create(user=user, person=f.make_person(name="赵六"))
    page = logged_in(user).get(reverse("tax:mine")).content.decode()
    assert 'data-testid="no-wallet"' in page and 'data-testid="my-tax-form"' not in page
    assert 'data-testid="no-taxes">暂无缴税记录<' in page


def test_refunds_paid_into_their_wallet_are_theirs_to_see(refunds):  # noqa: F811
    tax = refunds
    payer, _, user = individual(tax, balance_fen=0)
    other, _, other_user = individual(tax, balance_fen=0)
    services.receive_refund_order(message=order([refund_item(payer, amount_fen=88_00)]), now=timezone.now())
    refund_order = RefundOrder.objects.get()
    services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    services.approve_refund_order(order_id=refund_order.pk, user=tax.approver, now=timezone.now())
    assert tax.balance(payer.wallet_id) == 88_00
    refund = Refund.objects.get()
    page = logged_in(user).get(reverse("tax:mine")).content.decode()
    assert f'data-refund="{refund.pk}"' in page and 'data-state="paid"' in page and "¥88.00" in page
    assert [r["amount_fen"] for r in api_as(user).get("/api/v1/tax/my-refunds/").json()["results"]] == [88_00]
    assert f'data-refund="{refund.pk}"' not in logged_in(other_user).get(reverse("tax:mine")).content.decode()
    assert api_as(other_user).get("/api/v1/tax/my-refunds/").json()["results"] == []
    assert api_as(tax.staff).get("/api/v1/tax/my-refunds/").status_code == 403
    assert tax.balance(other.wallet_id) == 0
