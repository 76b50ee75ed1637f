from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class TaxConfig(AppConfig):
    name = "tax"
    # What trace pages call this domain's events (treasury.trace.labels).
    trace_event_labels = {
        "tax.agreement.signed": pgettext_lazy("trace event", "Agreement signed"),
        "tax.agreement.verification_passed": pgettext_lazy("trace event", "Agreement verification passed"),
        "tax.agreement.verification_failed": pgettext_lazy("trace event", "Agreement verification failed"),
        "tax.agreement.verified": pgettext_lazy("trace event", "Agreement verified"),
        "tax.agreement.activated": pgettext_lazy("trace event", "Agreement in force"),
        "tax.agreement.suspended": pgettext_lazy("trace event", "Agreement suspended"),
        "tax.agreement.resumed": pgettext_lazy("trace event", "Agreement resumed"),
        "tax.agreement.revoked": pgettext_lazy("trace event", "Agreement revoked"),
        "tax.deduction.received": pgettext_lazy("trace event", "Deduction received"),
        "tax.deduction.refused": pgettext_lazy("trace event", "Deduction refused"),
        "tax.deduction.debiting": pgettext_lazy("trace event", "Debiting the taxpayer"),
        "tax.deduction.succeeded": pgettext_lazy("trace event", "Tax deducted"),
        "tax.deduction.failed": pgettext_lazy("trace event", "Deduction failed"),
        "tax.deduction.outcome_unknown": pgettext_lazy("trace event", "Deduction outcome unknown"),
        "tax.deduction.reversed": pgettext_lazy("trace event", "Deduction reversed"),
        "tax.package.received": pgettext_lazy("trace event", "Batch package received"),
        "tax.package.deducting": pgettext_lazy("trace event", "Deducting the package"),
        "tax.package.chunk": pgettext_lazy("trace event", "Package items sent for debit"),
        "tax.package.stopped": pgettext_lazy("trace event", "Package items stopped"),
        "tax.package.items_decided": pgettext_lazy("trace event", "Package items decided"),
        "tax.package.done": pgettext_lazy("trace event", "Package done"),
        "tax.package.result_acknowledged": pgettext_lazy("trace event", "Package result acknowledged"),
        "tax.package.result_not_acknowledged": pgettext_lazy("trace event", "Package result not acknowledged yet"),
        "tax.refund.received": pgettext_lazy("trace event", "Refund order received"),
        "tax.refund.reviewed": pgettext_lazy("trace event", "Refund order reviewed"),
        "tax.refund.approved": pgettext_lazy("trace event", "Refund order approved"),
        "tax.refund.rejected": pgettext_lazy("trace event", "Refund order rejected"),
        "tax.refund.paying": pgettext_lazy("trace event", "Paying refunds"),
        "tax.refund.items_decided": pgettext_lazy("trace event", "Refunds decided"),
        "tax.refund.done": pgettext_lazy("trace event", "Refund order done"),
        "tax.refund.result_acknowledged": pgettext_lazy("trace event", "Refund result acknowledged"),
        "tax.refund.result_pending": pgettext_lazy("trace event", "Refund result not acknowledged yet"),
    }
    trace_subjects = {
        "tax.agreement": (pgettext_lazy("trace subject", "Three-party agreement"), "tax:agreement-detail"),
        "tax.deduction": (pgettext_lazy("trace subject", "Tax deduction"), "tax:deduction-detail"),
        "tax.package": (pgettext_lazy("trace subject", "Batch package"), "tax:package-detail"),
        "tax.refund": (pgettext_lazy("trace subject", "Refund order"), "tax:refund-detail"),
    }
    # What trace pages call the keys of this domain's event details (treasury.trace.labels).
    trace_detail_labels = {
        "tax_org_code": pgettext_lazy("trace detail", "Tax authority code"),
        "taxpayer": pgettext_lazy("trace detail", "Taxpayer"),
        "vc_no": pgettext_lazy("trace detail", "Verification serial"),
        "msg_id": pgettext_lazy("trace detail", "Message id"),
        "tax_vou_no": pgettext_lazy("trace detail", "Tax voucher number"),
        "pay_acct": pgettext_lazy("trace detail", "Payer account"),
        "treasury": pgettext_lazy("trace detail", "Treasury wallet"),
        "items": pgettext_lazy("trace detail", "Items"),
        "all_num": pgettext_lazy("trace detail", "Items in all"),
        "succ_num": pgettext_lazy("trace detail", "Succeeded in all"),
        "debiting": pgettext_lazy("trace detail", "Being debited"),
        "refused": pgettext_lazy("trace detail", "Refused"),
        "refused_items": pgettext_lazy("trace detail", "Refused items"),
        "succeeded": pgettext_lazy("trace detail", "Succeeded"),
        "paying": pgettext_lazy("trace detail", "Being paid"),
        "error": pgettext_lazy("trace detail", "Error"),
        "reviewed_by": pgettext_lazy("trace detail", "Reviewed by"),
        "cancel_no": pgettext_lazy("trace detail", "Reversal number"),
        "stop_no": pgettext_lazy("trace detail", "Stop number"),
        "stopped": pgettext_lazy("trace detail", "Stopped"),
    }
