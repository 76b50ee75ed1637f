from django.apps import AppConfig


class TaxReconciliationConfig(AppConfig):
    name = "tax.reconciliation"
    label = "tax_reconciliation"
    verbose_name = "税务对账 (tax reconciliation)"

    def ready(self):
        from treasury.services.transfers import batch_decided

        from .corrections import book_entries_when_settled

        # A correcting transfer of a case settled: its treasury entry is booked at once (the sweep catches up).
        batch_decided.connect(book_entries_when_settled, dispatch_uid="tax_reconciliation.book_entries_when_settled")
