from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class PayrollConfig(AppConfig):
    name = "payroll"
    # What trace pages call this domain's events (treasury.trace.labels).
    trace_event_labels = {
        "payroll.batch.validated": pgettext_lazy("trace event", "Payroll file checked"),
        "payroll.batch.rejected": pgettext_lazy("trace event", "Payroll file rejected"),
        "payroll.batch.submitted": pgettext_lazy("trace event", "Payroll run submitted"),
        "payroll.batch.approved": pgettext_lazy("trace event", "Payroll run approved"),
        "payroll.batch.funded": pgettext_lazy("trace event", "Payroll run funded"),
        "payroll.batch.paying": pgettext_lazy("trace event", "Paying salaries"),
        "payroll.batch.paused": pgettext_lazy("trace event", "Payroll run paused"),
        "payroll.batch.resumed": pgettext_lazy("trace event", "Payroll run resumed"),
        "payroll.batch.paid": pgettext_lazy("trace event", "All salaries paid"),
        "payroll.batch.partially_paid": pgettext_lazy("trace event", "Salaries partly paid"),
        "payroll.batch.retried": pgettext_lazy("trace event", "Failed salaries sent again"),
        "payroll.batch.lines_returned": pgettext_lazy("trace event", "Failed salaries given up"),
        "payroll.batch.closed": pgettext_lazy("trace event", "Payroll run closed"),
        "payroll.batch.cancelled": pgettext_lazy("trace event", "Payroll run cancelled"),
        "payroll.union.rules_changed": pgettext_lazy("trace event", "Union rules changed"),
        "payroll.union_member.added": pgettext_lazy("trace event", "Union member added"),
        "payroll.union_member.changed": pgettext_lazy("trace event", "Union member changed"),
        "payroll.union_member.deactivated": pgettext_lazy("trace event", "Union member deactivated"),
        "payroll.union_member.reactivated": pgettext_lazy("trace event", "Union member reactivated"),
    }
    trace_subjects = {
        "payroll.batch": (pgettext_lazy("trace subject", "Payroll run"), "payroll:batch-detail"),
        "payroll.union": (pgettext_lazy("trace subject", "Union"), "payroll:union-detail"),
        "payroll.union_member": (pgettext_lazy("trace subject", "Union member"), None),
    }
    # What trace pages call the keys of this domain's event details (treasury.trace.labels).
    trace_detail_labels = {
        "held": pgettext_lazy("trace detail", "Held"),
        "released": pgettext_lazy("trace detail", "Released"),
        "warnings": pgettext_lazy("trace detail", "Warnings"),
        "wallet_balance_fen": pgettext_lazy("trace detail", "Wallet balance"),
        "name": pgettext_lazy("trace detail", "Name"),
        "wallet_id": pgettext_lazy("trace detail", "Wallet"),
        "dues_base_fen": pgettext_lazy("trace detail", "Dues base"),
        "standing_authorisation": pgettext_lazy("trace detail", "Standing authorisation"),
        "employee_no": pgettext_lazy("trace detail", "Employee no."),
        "resident_id": pgettext_lazy("trace detail", "Resident ID"),
    }

    def ready(self):
        # A payroll batch moves on as soon as its last transfer is decided (the periodic sweep stays as a net).
        from treasury.services.transfers import batch_decided

        from .services import finish_batch_when_decided

        batch_decided.connect(finish_batch_when_decided, dispatch_uid="payroll.finish_batch_when_decided")
        # The unions' dues and funds follow the salaries actually paid (payroll.union.remit_for_payroll).
        from .union import remit_when_decided

        batch_decided.connect(remit_when_decided, dispatch_uid="payroll.union.remit_when_decided")
