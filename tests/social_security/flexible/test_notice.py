"""A flexible-employment payment is told to the collecting authority like an employer's: a signed 5104 over
SOAP with the person's ID, the months and the amounts, recorded once by the sandbox tax system."""
from __future__ import annotations

import datetime as dt

import pytest

from adapters.tips import messages as m
from adapters.tips.interface import SocialFlexiblePayment
from adapters.tips.models import TipsMessage
from adapters.xml import XmlRefused
from social_security.flexible import services
from social_security.flexible.models import Payment, PaymentState
from social_security.services import resend_pending
from tests.social_security.flexible.conftest import NOW

SEP, OCT = dt.date(2026, 9, 1), dt.date(2026, 10, 1)


def test_the_notice_is_schema_valid_and_reads_back():
    notice = SocialFlexiblePayment(
        tax_org_code="13701000000", pay_no="F00000000007", payer_id="110101199003070011", payer_name="李四",
        region_code="370100", start_period="202609", end_period="202610", month_num=2, premium_amount_fen=452400,
        late_fee_fen=2941, amount_fen=455341, pay_acct="3001000000000001", pay_date=dt.date(2026, 11, 26),
        pay_serial="socialflex:payment:7")
    head = m.new_head(msg_no=m.SOCIAL_FLEXIBLE_PAYMENT, src="100000000001", des="100000000002",
                      work_date=dt.date(2026, 11, 26))
    for encoding in ("UTF-8", "GBK"):
        doc = m.read_document(m.social_flexible_payment_document(head=head, message=notice, encoding=encoding),
                              max_bytes=100_000)
        assert m.read_body(doc) == notice and m.message_key(doc) == "SI-13701000000-F00000000007"
    spoiled = m.social_flexible_payment_document(head=head, message=notice).replace(b"<StartPeriod>202609",
                                                                                    b"<StartPeriod>2026-09")
    with pytest.raises(XmlRefused):
        m.read_document(spoiled, max_bytes=100_000)


def test_a_paid_payment_is_notified_over_soap_and_recorded_once(flex, tips_sandbox):
    who = flex.individual(name="李四")
    enrolment = flex.enrol(who)
    sep, oct_ = enrolment.periods.get(month=SEP), enrolment.periods.get(month=OCT)
    payment = services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[sep.pk, oct_.pk], now=NOW)
    assert payment.state == PaymentState.PAID
    payment.refresh_from_db()
    assert payment.notified_at is not None  # sent after the payment's commit (Celery eager here)
    (record,) = tips_sandbox.admin.social_flexible_payments()
    assert {k: record[k] for k in ("tax_org_code", "pay_no", "payer_id", "payer_name", "start_period", "end_period",
                                   "month_num", "premium_amount_fen", "late_fee_fen", "amount_fen", "pay_acct",
                                   "pay_serial")} == {
        "tax_org_code": flex.authority.code, "pay_no": payment.payment_no, "payer_id": who.person.resident_id,
        "payer_name": "李四", "start_period": "202609", "end_period": "202610", "month_num": 2,
        "premium_amount_fen": 2 * 226200, "late_fee_fen": 2941, "amount_fen": 2 * 226200 + 2941,
        "pay_acct": who.wallet_id, "pay_serial": payment.idempotency_key}
    # An acknowledgement lost on the way: the sweep sends it again, the authority answers 94051, one record.
    Payment.objects.filter(pk=payment.pk).update(notified_at=None)
    assert resend_pending(now=NOW)["flexible_notices"] == 1
    key = f"SI-{flex.authority.code}-{payment.payment_no}"
    assert TipsMessage.objects.filter(key=key, msg_no="5104", direction=TipsMessage.Direction.OUTBOUND).count() == 2
    assert len(tips_sandbox.admin.social_flexible_payments()) == 1


def test_an_unreachable_authority_leaves_the_notice_for_the_sweep(flex, monkeypatch):
    from adapters.tips.interface import Acknowledgement, TipsUnavailable
    from social_security import services as social_services

    sent = []

    class Tips:
        def send_social_flexible_payment(self, notice):
            sent.append(notice)
            if len(sent) == 1:
                raise TipsUnavailable("connection refused")
            return Acknowledgement(ori_msg_id="0" * 20, result="90000")

    monkeypatch.setattr(social_services, "_tips", lambda: Tips())
    who = flex.individual()
    enrolment = flex.enrol(who)
    payment = services.pay(user=who.user, enrolment_id=enrolment.pk,
                           period_ids=[enrolment.periods.get(month=SEP).pk], now=NOW)
    payment.refresh_from_db()
    assert payment.state == PaymentState.PAID and payment.notified_at is None
    assert services.notify_pending_payments(now=NOW) == 1
    payment.refresh_from_db()
    assert payment.notified_at is not None and [n.pay_no for n in sent] == [payment.payment_no] * 2
    assert services.notify_pending_payments(now=NOW) == 0 and len(sent) == 2
