from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class FiscalDisbursementConfig(AppConfig):
    name = "fiscal_disbursement"
    # What trace pages call this domain's events (treasury.trace.labels).
    trace_event_labels = {
        "fiscal.request.created": pgettext_lazy("trace event", "Payment request created"),
        "fiscal.request.payees_loaded": pgettext_lazy("trace event", "Payee file loaded"),
        "fiscal.request.payees_refused": pgettext_lazy("trace event", "Payee file refused"),
        "fiscal.request.attachment_added": pgettext_lazy("trace event", "Attachment added"),
        "fiscal.request.submitted": pgettext_lazy("trace event", "Payment request submitted"),
        "fiscal.request.first_approval": pgettext_lazy("trace event", "First approval given"),
        "fiscal.request.approved": pgettext_lazy("trace event", "Payment request approved"),
        "fiscal.request.rejected": pgettext_lazy("trace event", "Payment request sent back"),
        "fiscal.request.reworked": pgettext_lazy("trace event", "Payment request reopened"),
        "fiscal.request.cancelled": pgettext_lazy("trace event", "Payment request cancelled"),
        "fiscal.voucher.issued": pgettext_lazy("trace event", "Voucher accepted by the budget system"),
        "fiscal.voucher.refused": pgettext_lazy("trace event", "Voucher refused by the budget system"),
        "fiscal.request.paying": pgettext_lazy("trace event", "Paying payees"),
        "fiscal.request.paid": pgettext_lazy("trace event", "All payees paid"),
        "fiscal.request.partially_paid": pgettext_lazy("trace event", "Payees partly paid"),
        "fiscal.request.failed": pgettext_lazy("trace event", "No payee paid"),
        "fiscal.request.retried": pgettext_lazy("trace event", "Failed payments sent again"),
        "fiscal.request.lines_returned": pgettext_lazy("trace event", "Failed payments returned to the budget"),
        "fiscal.request.reporting": pgettext_lazy("trace event", "Reporting payments to the budget system"),
        "fiscal.request.reported": pgettext_lazy("trace event", "Payments reported to the budget system"),
        "fiscal.request.reconciled": pgettext_lazy("trace event", "Reconciled with the budget system"),
        "fiscal.request.reconcile_failed": pgettext_lazy("trace event", "Budget system's figures differ"),
        "fiscal.quota.reserved": pgettext_lazy("trace event", "Quota reserved"),
        "fiscal.quota.consumed": pgettext_lazy("trace event", "Quota used"),
        "fiscal.quota.released": pgettext_lazy("trace event", "Quota released"),
        "fiscal.quota.unconsumed": pgettext_lazy("trace event", "Paid money came back: quota reserved again"),
    }
    trace_subjects = {
        "fiscal.request": (pgettext_lazy("trace subject", "Payment request"), "fiscal:request_detail"),
        "fiscal.quota": (pgettext_lazy("trace subject", "Budget quota"), None),
    }
    # What trace pages call the keys of this domain's event details (treasury.trace.labels).
    trace_detail_labels = {
        "quota": pgettext_lazy("trace detail", "Quota"),
        "reserved_fen": pgettext_lazy("trace detail", "Reserved"),
        "consumed_fen": pgettext_lazy("trace detail", "Spent"),
        "available_fen": pgettext_lazy("trace detail", "Available"),
        "file_sha256": pgettext_lazy("trace detail", "File digest (SHA-256)"),
        "filename": pgettext_lazy("trace detail", "File"),
        "sha256": pgettext_lazy("trace detail", "Digest (SHA-256)"),
        "ack_id": pgettext_lazy("trace detail", "Acknowledgement id"),
        "duplicate": pgettext_lazy("trace detail", "Sent before"),
        "reports": pgettext_lazy("trace detail", "Reports"),
        "returned_fen": pgettext_lazy("trace detail", "Returned amount"),
        "ours": pgettext_lazy("trace detail", "Our figures"),
        "theirs": pgettext_lazy("trace detail", "Budget system's figures"),
        "differences": pgettext_lazy("trace detail", "Differences"),
        "recorded": pgettext_lazy("trace detail", "Figures recorded when paying ended"),
    }

    def ready(self):
        # A fiscal request moves on as soon as its last transfer is decided (the periodic sweep stays as a net).
        from treasury.services.transfers import batch_decided

        from .services import finish_request_when_decided

        batch_decided.connect(finish_request_when_decided, dispatch_uid="fiscal_disbursement.finish_request_when_decided")
