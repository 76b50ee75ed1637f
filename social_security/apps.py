from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class SocialSecurityConfig(AppConfig):
    name = "social_security"
    # What trace pages call this domain's events (treasury.trace.labels).
    trace_event_labels = {
        "social.declaration.prepared": pgettext_lazy("trace event", "Declaration prepared"),
        "social.declaration.line_added": pgettext_lazy("trace event", "Insured person added"),
        "social.declaration.line_removed": pgettext_lazy("trace event", "Insured person removed"),
        "social.declaration.declared": pgettext_lazy("trace event", "Declared to the tax system"),
        "social.declaration.confirmed": pgettext_lazy("trace event", "Confirmed by the tax system"),
        "social.declaration.rejected": pgettext_lazy("trace event", "Sent back by the tax system"),
        "social.declaration.reopened": pgettext_lazy("trace event", "Declaration reopened"),
        "social.declaration.cancelled": pgettext_lazy("trace event", "Declaration cancelled"),
        "social.declaration.payment_started": pgettext_lazy("trace event", "Paying premiums"),
        "social.declaration.paid": pgettext_lazy("trace event", "Premiums paid"),
        "social.declaration.payment_failed": pgettext_lazy("trace event", "Premium payment failed"),
        "social.declaration.payment_notified": pgettext_lazy("trace event", "Payment notice sent to the tax system"),
        "social.declaration.reconciled": pgettext_lazy("trace event", "Premiums reconciled"),
        "social.reconciliation.correction.approved": pgettext_lazy("trace event", "Correction approved"),
    }
    trace_subjects = {
        "social.declaration": (pgettext_lazy("trace subject", "Premium declaration"), "social:declaration-detail"),
        "social.reconciliation.correction": (pgettext_lazy("trace subject", "Reconciliation correction"), None),
    }
    # What trace pages call the keys of this domain's event details (treasury.trace.labels).
    trace_detail_labels = {
        "period": pgettext_lazy("trace detail", "Period"),
        "source": pgettext_lazy("trace detail", "Source"),
        "line": pgettext_lazy("trace detail", "Line"),
        "line_id": pgettext_lazy("trace detail", "Line id"),
        "check_date": pgettext_lazy("trace detail", "Check date"),
    }
