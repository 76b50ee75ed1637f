"""The tax domain's answers to the tax system (adapters.tips.interface.TaxMessageHandler).

The inbound TIPS endpoint (`settings.TIPS_MESSAGE_HANDLER`) calls these with parsed, validated and
verified messages; each method is one service call.
"""
from __future__ import annotations

from django.utils import timezone

from adapters.tips.interface import (
    Acknowledgement,
    AgreementVerification,
    AgreementVerificationReply,
    BatchDeduction,
    CheckDetail,
    DeductionResult,
    RealTimeDeduction,
    RefundOrder,
    Reversal,
    ReversalReply,
    StopPayment,
    StopPaymentReply,
)

from . import services


class TaxHandler:
    def verify_agreement(self, message: AgreementVerification) -> AgreementVerificationReply:
        return services.handle_agreement_verification(message=message, now=timezone.now())

    def deduct_real_time(self, message: RealTimeDeduction) -> DeductionResult:
        return services.deduct_real_time(message=message, now=timezone.now())

    def receive_batch(self, message: BatchDeduction) -> Acknowledgement:
        return services.receive_batch(message=message, now=timezone.now())

    def receive_check_detail(self, message: CheckDetail) -> Acknowledgement:
        from tax.reconciliation import services as reconciliation

        return reconciliation.receive_check_detail(message=message, now=timezone.now())

    def receive_refund_order(self, message: RefundOrder) -> Acknowledgement:
        return services.receive_refund_order(message=message, now=timezone.now())

    def reverse_deduction(self, message: Reversal) -> ReversalReply:
        from tax import reversals

        return reversals.reverse_deduction(message=message, now=timezone.now())

    def stop_payment(self, message: StopPayment) -> StopPaymentReply:
        from tax import reversals

        return reversals.stop_payment(message=message, now=timezone.now())
