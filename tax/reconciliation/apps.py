from django.apps import AppConfig


class TaxReconciliationConfig(AppConfig):
    name = "tax.reconciliation"
    label = "tax_reconciliation"
    verbose_name = "税务对账 (tax reconciliation)"
