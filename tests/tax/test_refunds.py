"""Refunds from the treasury (退库, 1104): received, reviewed, approved by a second person, paid to the
taxpayers' wallets at the sandbox operator, answered with a refund result."""
import datetime as dt
import itertools
from dataclasses import replace

import pytest
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from adapters.tips.interface import Acknowledgement, RefundItem, RefundOrder as RefundOrderMessage, ResultCode
from tax import services
from tax.handlers import TaxHandler
from tax.models import Refund, RefundOrder, RefundOrderState, RefundState
from tests import factories as f
from tests.tax.helpers import ENTRUST_DATE, OPERATOR_BANK_CODE, TAX_ORG_CODE, TREASURY_CODE, head
from treasury.access import roles
from treasury.access.errors import MakerCheckerViolation
from treasury.models import Transfer, TransferState
from treasury.receipts.models import Receipt
from treasury.services.ledger import check_ledger
from treasury.trace.models import TraceEvent

_serial = itertools.count(1)


@pytest.fixture
def refunds(tax, monkeypatch):
    """The treasury funded at the operator, a second tax staff member (the approver), and a fake TIPS
    client recording the refund results sent."""
    tax.ecny.admin.fund(wallet_id=tax.treasury_wallet.wallet_id, amount_fen=100_000_00)
    approver = f.make_user(role=roles.TAX_STAFF, organization=tax.authority)

    class FakeTips:
        def __init__(self):
            self.sent = []

        def send_refund_result(self, result):
            self.sent.append(result)
            return Acknowledgement(ori_msg_id="0" * 20, result=ResultCode.SUCCESS)

    fake = FakeTips()
    monkeypatch.setattr(services, "_tips", lambda: fake)
    tax.approver, tax.outbox = approver, fake
    return tax


def refund_item(payer, *, amount_fen: int, payee_name: str | None = None) -> RefundItem:
    n = next(_serial)
    return RefundItem(
        tra_no=f"{n:08d}", draw_back_tre_code=TREASURY_CODE, payee_bank_no=OPERATOR_BANK_CODE,
        payee_op_bk_code=OPERATOR_BANK_CODE, payee_acct=payer.wallet_id, payee_name=payee_name or payer.name,
        tax_pay_code=payer.taxpayer_id, tax_pay_name=payer.name, draw_back_vou_no=f"T{n:017d}",
        ori_tax_vou_no=f"3{n:017d}", amount_fen=amount_fen, bill_date=ENTRUST_DATE, budget_subject_code="1010101",
        draw_back_reason_code="01")


def order(items, *, pack_no: str | None = None, all_amount_fen: int | None = None) -> RefundOrderMessage:
    return RefundOrderMessage(
        head=head("1104"), tax_org_code=TAX_ORG_CODE, entrust_date=ENTRUST_DATE,
        pack_no=pack_no or f"R{next(_serial):07d}", return_term=3, all_num=len(items),
        all_amount_fen=sum(i.amount_fen for i in items) if all_amount_fen is None else all_amount_fen,
        items=tuple(items))


def test_a_refund_order_is_reviewed_approved_by_another_person_and_paid(refunds):
    tax = refunds
    company, person = tax.taxpayer(balance_fen=0), tax.taxpayer(personal=True, balance_fen=0)
    message = order([refund_item(company, amount_fen=1_234_56), refund_item(person, amount_fen=300_00)])
    ack = TaxHandler().receive_refund_order(message)
    assert (ack.ori_msg_id, ack.result) == (message.head.msg_id, ResultCode.SUCCESS)
    refund_order = RefundOrder.objects.get()
    assert refund_order.state == RefundOrderState.RECEIVED and Transfer.objects.count() == 0

    services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    services.approve_refund_order(order_id=refund_order.pk, user=tax.approver, now=timezone.now())

    refund_order.refresh_from_db()
    assert refund_order.state == RefundOrderState.DONE
    assert (refund_order.reviewed_by, refund_order.approved_by) == (tax.staff, tax.approver)
    assert (refund_order.succ_num, refund_order.succ_amount_fen) == (2, 1_534_56)
    assert tax.balance(company.wallet_id) == 1_234_56 and tax.balance(person.wallet_id) == 300_00
    assert tax.balance(tax.treasury_wallet.wallet_id) == 100_000_00 - 1_534_56
    transfers = Transfer.objects.all()
    assert {t.state for t in transfers} == {TransferState.SETTLED}
    assert {t.payer_id for t in transfers} == {tax.treasury_wallet.pk}
    assert Receipt.objects.filter(transfer__in=transfers).count() == 2
    assert set(Refund.objects.values_list("state", "result_code")) == {(RefundState.PAID, ResultCode.SUCCESS)}

    assert refund_order.result_acknowledged and not refund_order.result_pending
    (sent,) = tax.outbox.sent
    assert (sent.ori_pack_no, sent.all_num, sent.succ_num, sent.succ_amount_fen) == (message.pack_no, 2, 2, 1_534_56)
    assert [line.ori_tra_no for line in sent.items] == [i.tra_no for i in message.items]
    kinds = list(TraceEvent.objects.filter(stream_key=refund_order.stream_key).order_by("seq")
                 .values_list("kind", flat=True))
    assert kinds == ["tax.refund.received", "tax.refund.reviewed", "tax.refund.approved", "tax.refund.paying",
                     "tax.refund.items_decided", "tax.refund.done", "tax.refund.result_acknowledged"]
    assert check_ledger().problems == []


def test_the_reviewer_cannot_approve_and_nothing_is_paid_before_approval(refunds):
    tax = refunds
    payer = tax.taxpayer(balance_fen=0)
    services.receive_refund_order(message=order([refund_item(payer, amount_fen=100_00)]), now=timezone.now())
    refund_order = RefundOrder.objects.get()
    with pytest.raises(TransitionNotAllowed):  # approval needs a review first
        services.approve_refund_order(order_id=refund_order.pk, user=tax.approver, now=timezone.now())
    services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    with pytest.raises(MakerCheckerViolation):
        services.approve_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    from treasury.access.errors import AccessDenied

    with pytest.raises(AccessDenied):  # another tax authority's staff
        services.approve_refund_order(order_id=refund_order.pk, user=tax.other_staff, now=timezone.now())
    refund_order.refresh_from_db()
    assert refund_order.state == RefundOrderState.REVIEWED and refund_order.approved_by is None
    assert Transfer.objects.count() == 0 and tax.balance(payer.wallet_id) == 0


def test_a_rejected_order_pays_nothing_and_answers_with_the_reason(refunds):
    tax = refunds
    payer = tax.taxpayer(balance_fen=0)
    services.receive_refund_order(message=order([refund_item(payer, amount_fen=100_00)]), now=timezone.now())
    refund_order = RefundOrder.objects.get()
    with pytest.raises(services.TaxError):
        services.reject_refund_order(order_id=refund_order.pk, user=tax.staff, reason=" ", now=timezone.now())
    services.reject_refund_order(order_id=refund_order.pk, user=tax.staff, reason="退库审批单有误", now=timezone.now())
    refund_order.refresh_from_db()
    assert refund_order.state == RefundOrderState.REJECTED and refund_order.result_acknowledged
    assert Refund.objects.get().state == RefundState.REJECTED and Transfer.objects.count() == 0
    (sent,) = tax.outbox.sent
    assert sent.succ_num == 0 and "退库审批单有误" in sent.add_word and sent.items[0].result == ResultCode.OTHER_FAILURE
    with pytest.raises(TransitionNotAllowed):
        services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())


def test_a_duplicate_order_gets_the_original_ack(refunds):
    tax = refunds
    payer = tax.taxpayer(balance_fen=0)
    message = order([refund_item(payer, amount_fen=100_00), refund_item(payer, amount_fen=50_00)])
    first = services.receive_refund_order(message=message, now=timezone.now())
    again = services.receive_refund_order(message=message, now=timezone.now())
    assert first == again and first.result == ResultCode.SUCCESS
    assert RefundOrder.objects.count() == 1 and Refund.objects.count() == 2
    changed = order(list(message.items[:1]), pack_no=message.pack_no)
    assert services.receive_refund_order(message=changed, now=timezone.now()).result == ResultCode.DUPLICATE


def test_bad_orders_are_refused_whole(refunds):
    tax = refunds
    payer, other = tax.taxpayer(balance_fen=0), tax.taxpayer(balance_fen=0)
    good = refund_item(payer, amount_fen=100_00)
    assert services.receive_refund_order(message=order([good], all_amount_fen=1_00),
                                         now=timezone.now()).result == services.PACKAGE_REFUSED
    # The wallet belongs to someone else than the taxpayer refunded.
    stranger = refund_item(payer, amount_fen=100_00)
    stranger = replace(stranger, payee_acct=other.wallet_id)
    ack = services.receive_refund_order(message=order([good, stranger]), now=timezone.now())
    assert ack.result == ResultCode.OTHER_FAILURE and stranger.tra_no in ack.add_word
    missing = replace(good, tra_no="99999999", payee_acct=f.make_wallet_id(operator_code="300"))
    assert services.receive_refund_order(message=order([missing]), now=timezone.now()).result == \
        ResultCode.ACCOUNT_NOT_FOUND
    assert RefundOrder.objects.count() == 0 and Refund.objects.count() == 0


def test_a_refusal_at_payment_is_mapped_to_its_code(refunds):
    tax = refunds
    capped = tax.taxpayer(personal=True, wallet_class=4, balance_fen=9_500_00)  # class 4: balance cap 10,000.00
    frozen = tax.taxpayer(balance_fen=0)
    fine = tax.taxpayer(balance_fen=0)
    message = order([refund_item(capped, amount_fen=1_000_00), refund_item(frozen, amount_fen=20_00),
                     refund_item(fine, amount_fen=30_00)])
    assert services.receive_refund_order(message=message, now=timezone.now()).result == ResultCode.SUCCESS
    tax.ecny.admin.set_status(wallet_id=frozen.wallet_id, status="frozen")  # frozen after receipt
    refund_order = RefundOrder.objects.get()
    services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    services.approve_refund_order(order_id=refund_order.pk, user=tax.approver, now=timezone.now())
    refund_order.refresh_from_db()
    codes = list(Refund.objects.order_by("pk").values_list("result_code", flat=True))
    assert codes == [ResultCode.BALANCE_CAP, ResultCode.ACCOUNT_FROZEN, ResultCode.SUCCESS]
    assert refund_order.state == RefundOrderState.DONE and (refund_order.succ_num, refund_order.succ_amount_fen) == (1, 30_00)
    assert tax.balance(capped.wallet_id) == 9_500_00 and tax.balance(fine.wallet_id) == 30_00
    assert [line.result for line in tax.outbox.sent[0].items] == codes
    assert check_ledger().problems == []


def test_an_unreachable_tax_system_leaves_the_result_pending_until_the_sweep_sends_it(refunds, monkeypatch):
    from adapters.tips.interface import TipsUnavailable

    tax = refunds

    class Unreachable:
        def send_refund_result(self, result):
            raise TipsUnavailable("connection refused")

    monkeypatch.setattr(services, "_tips", lambda: Unreachable())
    payer = tax.taxpayer(balance_fen=0)
    services.receive_refund_order(message=order([refund_item(payer, amount_fen=10_00)]), now=timezone.now())
    refund_order = RefundOrder.objects.get()
    services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    services.approve_refund_order(order_id=refund_order.pk, user=tax.approver, now=timezone.now())
    refund_order.refresh_from_db()
    assert refund_order.state == RefundOrderState.DONE and refund_order.result_pending
    assert "connection refused" in refund_order.result_error and refund_order.result_attempts == 1
    monkeypatch.setattr(services, "_tips", lambda: tax.outbox)
    assert services.finish_refund_orders(now=timezone.now()) == {}  # too soon after the last attempt
    later = timezone.now() + dt.timedelta(seconds=21)
    assert services.finish_refund_orders(now=later) == {"results_acknowledged": 1}
    assert len(tax.outbox.sent) == 1


def test_a_result_the_tax_system_refused_waits_for_a_person_not_the_sweep(refunds, monkeypatch):
    from adapters.tips.interface import TipsFault

    tax = refunds
    sent = []

    class Refusing:
        def send_refund_result(self, result):
            sent.append(result)
            raise TipsFault("92004 schema", code="92004")

    monkeypatch.setattr(services, "_tips", lambda: Refusing())
    payer = tax.taxpayer(balance_fen=0)
    services.receive_refund_order(message=order([refund_item(payer, amount_fen=10_00)]), now=timezone.now())
    refund_order = RefundOrder.objects.get()
    services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    services.approve_refund_order(order_id=refund_order.pk, user=tax.approver, now=timezone.now())
    refund_order.refresh_from_db()
    assert refund_order.result_pending and refund_order.result_fault_code == "92004" and len(sent) == 1
    for minutes in (1, 10, 60):  # the sweep runs every 30 s in service: it never sends the refused result again
        services.finish_refund_orders(now=timezone.now() + dt.timedelta(minutes=minutes))
    assert len(sent) == 1


API = "/api/v1/tax/refunds"


def test_pages_and_api_review_approve_and_reject(refunds, client):
    from django.test import Client
    from rest_framework.test import APIClient

    tax = refunds
    payer = tax.taxpayer(balance_fen=0)
    services.receive_refund_order(message=order([refund_item(payer, amount_fen=100_00)]), now=timezone.now())
    services.receive_refund_order(message=order([refund_item(payer, amount_fen=7_00)]), now=timezone.now())
    first, second = RefundOrder.objects.order_by("pk")

    client.force_login(tax.staff)
    listing = client.get("/tax/refunds/")
    assert listing.status_code == 200 and first.pack_no in listing.content.decode()
    page = client.get(f"/tax/refunds/{first.pk}/").content.decode()
    assert 'data-action="review"' in page and 'data-action="approve"' not in page and "csrfmiddlewaretoken" in page
    assert client.post(f"/tax/refunds/{first.pk}/review/").status_code == 302
    page = client.get(f"/tax/refunds/{first.pk}/").content.decode()
    assert 'data-action="approve"' not in page  # the reviewer is not offered the approval
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(tax.approver)
    assert guarded.post(f"/tax/refunds/{first.pk}/approve/").status_code == 403  # no CSRF token
    approver = Client()
    approver.force_login(tax.approver)
    assert 'data-action="approve"' in approver.get(f"/tax/refunds/{first.pk}/").content.decode()
    assert approver.post(f"/tax/refunds/{first.pk}/approve/").status_code == 302
    first.refresh_from_db()
    assert first.state == RefundOrderState.DONE and tax.balance(payer.wallet_id) == 100_00
    assert "90000" in approver.get(f"/tax/refunds/{first.pk}/").content.decode()

    api = APIClient()
    api.force_authenticate(tax.staff)
    assert {o["pack_no"] for o in api.get(f"{API}/").json()["results"]} == {first.pack_no, second.pack_no}
    detail = api.get(f"{API}/{second.pk}/").json()
    assert detail["available_actions"] == ["review", "reject"] and detail["refunds"][0]["amount_fen"] == 7_00
    assert api.post(f"{API}/{second.pk}/review/").json()["state"] == RefundOrderState.REVIEWED
    refused = api.post(f"{API}/{second.pk}/approve/")
    assert refused.status_code == 403 and refused.json()["code"] == "maker_checker"
    assert api.post(f"{API}/{second.pk}/reject/", {"reason": ""}, format="json").status_code == 400
    rejected = api.post(f"{API}/{second.pk}/reject/", {"reason": "重复退库"}, format="json").json()
    assert rejected["state"] == RefundOrderState.REJECTED and rejected["reject_reason"] == "重复退库"
    by_approver = APIClient()
    by_approver.force_authenticate(tax.approver)
    assert by_approver.post(f"{API}/{second.pk}/approve/").status_code == 409  # rejected: nothing to approve

    auditor = APIClient()
    auditor.force_authenticate(f.make_user(role=roles.AUDITOR))
    assert auditor.get(f"{API}/{first.pk}/").json()["available_actions"] == []
    assert auditor.post(f"{API}/{first.pk}/reject/", {"reason": "x"}, format="json").status_code == 403
    other = APIClient()
    other.force_authenticate(tax.other_staff)
    assert other.get(f"{API}/{first.pk}/").status_code == 404 and other.get(f"{API}/").json()["results"] == []


def test_refund_orders_and_agreements_wait_on_the_dashboard_for_the_staff_who_may_act(refunds, settings):
    from django.urls import reverse

    from tests.clients import logged_in
    from treasury.waiting import waiting_for

    def waiting(user) -> dict[str, int]:
        return {item.key: item.count for item in waiting_for(user)}

    tax = refunds
    services.receive_refund_order(message=order([refund_item(tax.taxpayer(balance_fen=0), amount_fen=100_00)]),
                                  now=timezone.now())
    refund_order = RefundOrder.objects.get()
    assert waiting(tax.staff) == waiting(tax.approver) == {"tax_refunds_to_review": 1}
    services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    assert waiting(tax.staff) == {}  # the reviewer does not approve (maker-checker)
    assert waiting(tax.approver) == {"tax_refunds_to_approve": 1}
    html = logged_in(tax.approver).get(reverse("dashboard")).content.decode()
    assert f'href="{reverse("tax:refund-list")}?state={RefundOrderState.REVIEWED}"' in html
    assert waiting(tax.other_staff) == {}  # another tax authority's order
    services.approve_refund_order(order_id=refund_order.pk, user=tax.approver, now=timezone.now())
    assert waiting(tax.approver) == {}

    settings.TAX_AGREEMENT_ACTIVATE_ON_VERIFY = False  # verified agreements wait for a person to put them in force
    agreement = tax.signed_and_verified(tax.taxpayer())
    assert agreement.state == "verified" and waiting(tax.staff) == {"tax_agreements_to_activate": 1}
    assert waiting(tax.other_staff) == {}


def test_an_order_whose_items_name_two_treasuries_is_refused_not_paid_from_the_first_ones(refunds):
    """An order is paid from one treasury single account, the one its first item names: an item naming another
    treasury (DrawBackTreCode) was paid from the first one's wallet and entered under its own treasury's code."""
    from tests.tax.helpers import OPERATOR_CODE
    from treasury.models import LedgerAccount, Organization, Wallet
    from treasury.services.wallets import register_wallet

    tax = refunds
    district = f.make_organization(org_type=Organization.Type.TREASURY, name="国家金库示范区支库", code="3701020000")
    wallet_id = f.make_wallet_id(operator_code=OPERATOR_CODE)
    register_wallet(wallet_id=wallet_id, wallet_type=Wallet.Type.CORPORATE, operator=tax.treasury_wallet.operator,
                    holder_org=district, holder_name=district.name, account_kind=LedgerAccount.Kind.TREASURY_SINGLE)
    tax.ecny.admin.open_wallet(wallet_id=wallet_id, wallet_type="WT09", holder_name=district.name)
    payer = tax.taxpayer(balance_fen=0)
    items = [refund_item(payer, amount_fen=100_00), replace(refund_item(payer, amount_fen=50_00),
                                                            draw_back_tre_code=district.code)]
    ack = services.receive_refund_order(message=order(items), now=timezone.now())
    assert ack.result != ResultCode.SUCCESS
    assert not RefundOrder.objects.exists() and not Refund.objects.exists()


def test_a_refund_whose_reply_was_lost_and_whose_money_came_back_is_answered_failed(refunds):
    """The operator paid both refunds but its reply was lost; by the time recovery asks, one came back (the payee's
    wallet returned it to the treasury). That refund is failed, not paid, and not left paying: the order is done,
    answered once, with the other refund paid and entered alone."""
    from treasury.services import transfers as transfer_services

    tax = refunds
    back, fine = tax.taxpayer(balance_fen=0), tax.taxpayer(balance_fen=0)
    assert services.receive_refund_order(message=order([refund_item(back, amount_fen=40_00),
                                                        refund_item(fine, amount_fen=30_00)]),
                                         now=timezone.now()).result == ResultCode.SUCCESS
    refund_order = RefundOrder.objects.get()
    services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    tax.ecny.admin.set_fault("error_after_apply", count=1)
    services.approve_refund_order(order_id=refund_order.pk, user=tax.approver, now=timezone.now())
    came_back = Refund.objects.order_by("pk").first()
    tax.ecny.admin.return_transfer(request_id=came_back.transfer.idempotency_key, reason="收款钱包已注销")

    transfer_services.recover_unconfirmed_transfers(now=timezone.now(), older_than_seconds=0)
    services.finish_refund_orders(now=timezone.now())
    refund_order.refresh_from_db()
    assert Transfer.objects.get(pk=came_back.transfer_id).state == TransferState.RETURNED
    assert refund_order.state == RefundOrderState.DONE
    assert (refund_order.succ_num, refund_order.succ_amount_fen) == (1, 30_00)
    refunds_now = list(Refund.objects.order_by("pk"))
    assert [r.state for r in refunds_now] == [RefundState.FAILED, RefundState.PAID]
    assert "退回" in refunds_now[0].add_word or "came back" in refunds_now[0].add_word
    assert (tax.balance(back.wallet_id), tax.balance(fine.wallet_id)) == (0, 30_00)
    assert len(tax.outbox.sent) == 1
    assert [line.result == ResultCode.SUCCESS for line in tax.outbox.sent[0].items] == [False, True]
    from tax.models import TreasuryEntry

    assert list(TreasuryEntry.objects.filter(amount_fen__lt=0).values_list("amount_fen", flat=True)) == [-30_00]
    assert check_ledger().problems == []
