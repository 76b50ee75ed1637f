"""Declarations over the TIPS channel for real: signed 5101/5103 documents over SOAP to the sandbox tax system on
a port, its 5102 answers, the message log, refusals, and a lost reply answered again under the same MsgID."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from adapters.tips import messages as m
from adapters.tips.interface import SocialDeclaration, SocialDeclarationReply, SocialDeclarationType, SocialPayment
from adapters.tips.models import TipsMessage
from adapters.xml import XmlRefused
from social_security import services
from social_security.models import DeclarationState as S
from tests.social_security.test_declarations import ROWS


def declared(world):
    declaration = services.create_declaration(user=world.operator_user, region_code="370100", period="2026-03",
                                              rows=ROWS, now=timezone.now())
    services.declare(declaration_id=declaration.pk, user=world.approver, now=timezone.now())
    declaration.refresh_from_db()
    return declaration


def test_documents_are_schema_valid_and_read_back():
    head = m.new_head(msg_no=m.SOCIAL_DECLARATION, src="100000000001", des="100000000002", work_date=dt.date(2026, 3, 5))
    message = SocialDeclaration(
        tax_org_code="13701000000", decl_no="S00000000001", payer_code="91350100M000100Y43", payer_name="示范科技",
        region_code="370100", period="202603", person_num=2, base_amount_fen=1268000, employer_amount_fen=303052,
        individual_amount_fen=130604, all_amount_fen=433656,
        types=(SocialDeclarationType("pension", 202880, 101440), SocialDeclarationType("medical", 88760, 25360),
               SocialDeclarationType("unemployment", 8876, 3804), SocialDeclarationType("work_injury", 2536, 0)))
    for encoding in ("UTF-8", "GBK"):
        doc = m.read_document(m.social_declaration_document(head=head, message=message, encoding=encoding),
                              max_bytes=100_000)
        assert m.read_body(doc) == message and m.message_key(doc) == "SI-13701000000-S00000000001"
    reply = SocialDeclarationReply(ori_msg_id=head.msg_id, ori_tax_org_code="13701000000", ori_decl_no="S00000000001",
                                   result="90000", vou_no="SI2026030000000001", confirmed_amount_fen=433656)
    reply_doc = m.read_document(m.social_declaration_reply_document(
        head=m.reply_head(head, msg_no=m.SOCIAL_DECLARATION_REPLY), reply=reply), max_bytes=100_000)
    assert m.read_body(reply_doc) == reply
    payment = SocialPayment(tax_org_code="13701000000", decl_no="S00000000001", vou_no="SI2026030000000001",
                            pay_acct="3001000000000001", amount_fen=433656, pay_date=dt.date(2026, 3, 6),
                            pay_serial="social:1:1")
    pay_head = m.new_head(msg_no=m.SOCIAL_PAYMENT, src="100000000001", des="100000000002", work_date=dt.date(2026, 3, 6))
    assert m.read_body(m.read_document(m.social_payment_document(head=pay_head, message=payment),
                                       max_bytes=100_000)) == payment
    with pytest.raises(ValueError):  # a field out of its pattern is refused before anything is signed
        m.social_declaration_document(head=head, message=SocialDeclaration(**{**message.__dict__, "region_code": "3701"}))
    spoiled = m.social_payment_document(head=pay_head, message=payment).replace(b"<TraAmt>4336.56", b"<TraAmt>4336.5")
    with pytest.raises(XmlRefused):
        m.read_document(spoiled, max_bytes=100_000)


@pytest.mark.parametrize("vou_no, amount_fen", [("", 0), ("SI2026030000000001", 0), ("SI2026030000000001", -500)])
def test_a_confirmation_without_a_voucher_or_a_positive_total_is_refused(vou_no, amount_fen):
    """Read as it came, such a 5102 confirmed the declaration for 0.00 or less (or with no voucher number): a total no
    transfer can pay, and a confirmed declaration is not declared again. Refused, it is an unreadable reply: the
    declaration stays declared and is sent again."""
    head = m.new_head(msg_no=m.SOCIAL_DECLARATION_REPLY, src="100000000002", des="100000000001",
                      work_date=dt.date(2026, 3, 5))
    reply = SocialDeclarationReply(ori_msg_id=head.msg_id, ori_tax_org_code="13701000000", ori_decl_no="S00000000001",
                                   result="90000", vou_no=vou_no, confirmed_amount_fen=amount_fen)
    doc = m.read_document(m.social_declaration_reply_document(head=head, reply=reply), max_bytes=100_000)
    with pytest.raises(XmlRefused):
        m.read_body(doc)
    refused = SocialDeclarationReply(**{**reply.__dict__, "result": "S0001", "add_word": "人数不符"})
    doc = m.read_document(m.social_declaration_reply_document(head=head, reply=refused), max_bytes=100_000)
    assert m.read_body(doc).result == "S0001"  # a refusal carries neither


def test_declared_confirmed_paid_and_notified_over_soap(world, tips_sandbox):
    declaration = declared(world)
    assert declaration.state == S.CONFIRMED, declaration.state_reason
    assert declaration.voucher_no.startswith("SI202603") and declaration.confirmed_total_fen == declaration.total_fen
    (record,) = tips_sandbox.admin.social_declarations()
    assert (record["decl_no"], record["state"], record["vou_no"], record["all_amount_fen"], record["person_num"]) == (
        declaration.declaration_no, "confirmed", declaration.voucher_no, declaration.total_fen, 3)
    key = f"SI-{world.authority.code}-{declaration.declaration_no}"
    assert set(TipsMessage.objects.filter(key=key).values_list("msg_no", "direction")) == {
        ("5101", TipsMessage.Direction.OUTBOUND), ("5102", TipsMessage.Direction.INBOUND)}
    services.pay_declaration(declaration_id=declaration.pk, user=world.approver, now=timezone.now())
    services.finish_paying_declarations(now=timezone.now())
    declaration.refresh_from_db()
    assert declaration.state == S.PAID and declaration.payment_notified_at is not None
    (record,) = tips_sandbox.admin.social_declarations()
    assert (record["paid_amount_fen"], record["pay_acct"], record["pay_serial"]) == (
        declaration.total_fen, world.wallet.wallet_id, f"social:{declaration.pk}:1")
    # The same notice again (a lost acknowledgement, then the sweep) is answered 94051 and recorded once.
    from social_security.models import Declaration

    Declaration.objects.filter(pk=declaration.pk).update(payment_notified_at=None)
    services.resend_pending(now=timezone.now())
    declaration.refresh_from_db()
    assert declaration.payment_notified_at is not None
    assert TipsMessage.objects.filter(key=key, msg_no="5103", direction=TipsMessage.Direction.OUTBOUND).count() == 2


def test_a_refusal_over_soap_comes_back_with_its_reason(world, tips_sandbox):
    tips_sandbox.admin.refuse_social_declarations(reason="参保人员未登记 (insured persons not registered)")
    declaration = declared(world)
    assert declaration.state == S.REJECTED and declaration.state_reason.startswith("S0001 参保人员未登记")
    services.reopen_declaration(declaration_id=declaration.pk, user=world.operator_user, now=timezone.now())
    services.declare(declaration_id=declaration.pk, user=world.approver, now=timezone.now())
    declaration.refresh_from_db()
    assert declaration.state == S.CONFIRMED
    assert [r["state"] for r in tips_sandbox.admin.social_declarations()] == ["confirmed"]


def test_a_lost_reply_is_answered_again_under_the_same_msg_id_and_confirms_once(world, tips_sandbox):
    tips_sandbox.admin.set_fault("lost_reply", count=1)
    declaration = declared(world)
    assert declaration.state == S.CONFIRMED
    sent = TipsMessage.objects.filter(msg_no="5101", direction=TipsMessage.Direction.OUTBOUND)
    assert sent.count() == 2 and len(set(sent.values_list("msg_id", flat=True))) == 1
    (record,) = tips_sandbox.admin.social_declarations()
    assert record["vou_no"] == declaration.voucher_no
    # Sending the declared declaration again (the sweep after an unknown outcome) gets the same voucher.
    reply = services._tips().send_social_declaration(services.declaration_message(declaration=declaration))
    assert (reply.result, reply.vou_no) == ("90000", declaration.voucher_no)
