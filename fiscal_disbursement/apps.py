from django.apps import AppConfig


class FiscalDisbursementConfig(AppConfig):
    name = "fiscal_disbursement"
