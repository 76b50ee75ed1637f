from django.apps import AppConfig


class PayrollConfig(AppConfig):
    name = "payroll"

    def ready(self):
        # A payroll batch moves on as soon as its last transfer is decided (the periodic sweep stays as a net).
        from treasury.services.transfers import batch_decided

        from .services import finish_batch_when_decided

        batch_decided.connect(finish_batch_when_decided, dispatch_uid="payroll.finish_batch_when_decided")
        # The unions' dues and funds follow the salaries actually paid (payroll.union.remit_for_payroll).
        from .union import remit_when_decided

        batch_decided.connect(remit_when_decided, dispatch_uid="payroll.union.remit_when_decided")
