from django.apps import AppConfig


class FiscalDisbursementConfig(AppConfig):
    name = "fiscal_disbursement"

    def ready(self):
        # A fiscal request moves on as soon as its last transfer is decided (the periodic sweep stays as a net).
        from treasury.services.transfers import batch_decided

        from .services import finish_request_when_decided

        batch_decided.connect(finish_request_when_decided, dispatch_uid="fiscal_disbursement.finish_request_when_decided")
