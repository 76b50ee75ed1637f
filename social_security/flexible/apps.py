from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class FlexibleEmploymentConfig(AppConfig):
    # A sub-app with its own label and migrations: flexible-employment individuals (灵活就业人员).
    name = "social_security.flexible"
    label = "social_flexible"
    verbose_name = "灵活就业社保缴费 (flexible-employment premiums)"
    # What trace pages call this domain's events (treasury.trace.labels).
    trace_event_labels = {
        "social.flexible.enrolled": pgettext_lazy("trace event", "Enrolled"),
        "social.flexible.changed": pgettext_lazy("trace event", "Enrolment changed"),
        "social.flexible.paying": pgettext_lazy("trace event", "Paying premiums"),
        "social.flexible.paid": pgettext_lazy("trace event", "Premiums paid"),
        "social.flexible.failed": pgettext_lazy("trace event", "Premium payment failed"),
        "social.flexible.payment_notified": pgettext_lazy("trace event", "Payment notice sent to the tax system"),
        "social.flexible.reconciled": pgettext_lazy("trace event", "Premiums reconciled"),
    }
    trace_subjects = {
        "social.flexible.enrolment": (pgettext_lazy("trace subject", "Flexible-employment enrolment"), None),
        "social.flexible.payment": (pgettext_lazy("trace subject", "Flexible-employment payment"), None),
    }
    # What trace pages call the keys of this domain's event details (treasury.trace.labels).
    trace_detail_labels = {
        "region": pgettext_lazy("trace detail", "Region"),
        "level": pgettext_lazy("trace detail", "Base level"),
        "frequency": pgettext_lazy("trace detail", "Frequency"),
        "start_month": pgettext_lazy("trace detail", "First month"),
        "effective_month": pgettext_lazy("trace detail", "Effective from"),
        "months": pgettext_lazy("trace detail", "Months"),
        "late_fee_fen": pgettext_lazy("trace detail", "Late fee"),
    }
