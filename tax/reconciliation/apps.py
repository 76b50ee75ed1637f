from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class TaxReconciliationConfig(AppConfig):
    name = "tax.reconciliation"
    label = "tax_reconciliation"
    verbose_name = "税务对账 (tax reconciliation)"
    # What trace pages call this domain's events (treasury.trace.labels).
    trace_event_labels = {
        "tax.reconciliation.correction.proposed": pgettext_lazy("trace event", "Correction proposed"),
        "tax.reconciliation.correction.approved": pgettext_lazy("trace event", "Correction approved"),
        "tax.reconciliation.correction.rejected": pgettext_lazy("trace event", "Correction rejected"),
        "tax.reconciliation.correction.entered": pgettext_lazy("trace event", "Correction entered in the treasury"),
    }
    trace_subjects = {
        "tax.reconciliation.correction": (pgettext_lazy("trace subject", "Reconciliation correction"), None),
    }
    # What trace pages call the keys of this domain's event details (treasury.trace.labels).
    trace_detail_labels = {
        "proposed_by": pgettext_lazy("trace detail", "Proposed by"),
        "entry_date": pgettext_lazy("trace detail", "Entry date"),
        "amount_fen": pgettext_lazy("trace detail", "Amount"),
    }

    def ready(self):
        from treasury.services.transfers import batch_decided

        from .corrections import book_entries_when_settled

        # A correcting transfer of a case settled: its treasury entry is booked at once (the sweep catches up).
        batch_decided.connect(book_entries_when_settled, dispatch_uid="tax_reconciliation.book_entries_when_settled")
