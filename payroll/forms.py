"""Forms of the payroll pages and the batch states as people read them."""
import re

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from .models import BatchState as B

# The models' choices carry fixed bilingual labels (admin, exports); pages translate through these.
BATCH_STATE_LABELS = {
    # "Uploaded" and "Approved" are also column headings (a time): a state of their own here.
    B.UPLOADED: pgettext_lazy("payroll batch state", "Uploaded"),
    B.VALIDATED: _("Checked"),
    B.REJECTED: _("Rejected"),
    B.SUBMITTED: _("Awaiting approval"),
    B.APPROVED: pgettext_lazy("payroll batch state", "Approved"),
    B.FUNDED: _("Funded"),
    B.PAYING: _("Paying"),
    B.PAID: _("Paid"),
    B.PARTIALLY_PAID: _("Partially paid"),
    B.CLOSED: _("Closed"),
    B.CANCELLED: _("Cancelled"),
}

LINE_STATE_LABELS = {
    "held": _("Held"),
    "returned_line": _("Returned to the employer"),
    "not_paid": _("Not paid yet"),
    "pending": _("Pending"),
    "submitted": _("Paying"),
    "unknown": _("Outcome unknown"),
    "settled": _("Paid"),
    "failed": _("Failed"),
    "returned": _("Returned"),
    "reversed": _("Reversed"),
    "cancelled": _("Cancelled"),
}


def batch_state_choices():
    return [(value, BATCH_STATE_LABELS[value]) for value in B.values]


PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class UploadForm(forms.Form):
    file = forms.FileField(
        label=_("Payroll file (CSV or XLSX)"),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}),
    )
    hold_invalid_lines = forms.BooleanField(
        label=_("Pay the valid lines and hold the rest"),
        required=False,
        help_text=_("Without this, a file with any problem is rejected as a whole."),
    )


class BatchFilterForm(forms.Form):
    state = forms.ChoiceField(label=_("State"), required=False, choices=[("", _("All states"))] + batch_state_choices())
    period = forms.CharField(
        label=_("Pay period"), required=False, max_length=7,
        widget=forms.TextInput(attrs={"placeholder": "YYYY-MM", "type": "month"}),
    )

    def clean_period(self):
        period = self.cleaned_data["period"].strip()
        if period and not PERIOD_RE.match(period):
            raise forms.ValidationError(_("Enter a pay period as YYYY-MM."))
        return period


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("Reason for cancelling"), max_length=255,
                             widget=forms.TextInput(attrs={"size": 40}))


def line_ids_from(data) -> list[int]:
    """The integers among the posted `line_ids` (a tampered value is dropped, not a 500)."""
    ids = []
    for value in data.getlist("line_ids") if hasattr(data, "getlist") else data.get("line_ids", []):
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            continue
    return ids


def period_of(day) -> str:
    """The month (YYYY-MM) a business date falls in."""
    return f"{day.year:04d}-{day.month:02d}"


def recent_periods(day, count: int) -> list[str]:
    """`count` months ending with `day`'s month, newest first."""
    year, month = day.year, day.month
    periods = []
    for _step in range(count):
        periods.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return periods


class DuesCallForm(forms.Form):
    period = forms.CharField(label=_("Month"), max_length=7,
                             widget=forms.TextInput(attrs={"placeholder": "YYYY-MM", "type": "month"}))

    def __init__(self, *args, current_period: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.current_period = current_period
        self.fields["period"].initial = current_period

    def clean_period(self):
        period = self.cleaned_data["period"].strip()
        if not PERIOD_RE.match(period):
            raise forms.ValidationError(_("Enter a month as YYYY-MM."))
        if period > self.current_period:
            raise forms.ValidationError(_("Dues cannot be called for a month that has not begun."))
        return period


# ---------------------------------------------------------------------------------------------
# Union members
# ---------------------------------------------------------------------------------------------

MEMBER_STATES = {"": _("All"), "active": _("Active"), "inactive": _("Deactivated")}


class MemberSearchForm(forms.Form):
    q = forms.CharField(label=_("Name or employee no."), required=False, max_length=64)
    state = forms.ChoiceField(label=_("State"), required=False, choices=list(MEMBER_STATES.items()))

    def active(self) -> bool | None:
        """The state asked for as `union_members(active=...)` takes it."""
        return {"active": True, "inactive": False}.get(self.cleaned_data.get("state", ""))


class UnionMemberForm(forms.Form):
    """Adding (with the resident ID) or editing (without: a member's identity does not change) a member.
    Identifiers and the wallet are checked by `members.add_member` / `update_member`."""

    employee_no = forms.CharField(label=_("Employee no."), required=False, max_length=32)
    name = forms.CharField(label=_("Name"), max_length=64)
    resident_id = forms.CharField(label=_("Resident ID"), max_length=20)
    wallet_id = forms.CharField(label=_("e-CNY wallet id"), max_length=20,
                                widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}))
    dues_base = forms.DecimalField(label=_("Dues base (yuan)"), min_value=0, max_digits=12, decimal_places=2,
                                   initial=0)
    standing_authorisation = forms.BooleanField(
        label=_("Standing authorisation"), required=False,
        help_text=_("The member lets the union collect dues from their wallet each month."))

    def __init__(self, *args, adding: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not adding:
            del self.fields["resident_id"]


class MemberImportForm(forms.Form):
    file = forms.FileField(label=_("Member list (CSV)"),
                           widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}))

    def clean_file(self):
        from .members import MAX_FILE_BYTES

        uploaded = self.cleaned_data["file"]
        if uploaded.size > MAX_FILE_BYTES:  # before reading it into memory
            raise forms.ValidationError(_("The file must be at most 5 MB."))
        return uploaded


# ---------------------------------------------------------------------------------------------
# The union's rules
# ---------------------------------------------------------------------------------------------

PAY_COMPONENT_LABELS = {
    "basic_wage": _("Basic wage"), "allowances": _("Allowances"), "subsidies": _("Subsidies"),
    "bonus": _("Bonus"), "other_pay": _("Other pay"),
}


class UnionRulesForm(forms.Form):
    """Percentages as people type them; ranges are checked by `union.change_rules`."""

    dues_rate_percent = forms.DecimalField(label=_("Dues rate (%)"), max_digits=5, decimal_places=2)
    dues_base_components = forms.MultipleChoiceField(
        label=_("Dues base"), choices=list(PAY_COMPONENT_LABELS.items()), widget=forms.CheckboxSelectMultiple)
    funds_rate_percent = forms.DecimalField(label=_("Union funds rate (% of gross payroll)"), max_digits=5,
                                            decimal_places=2)
    grassroots_share_percent = forms.DecimalField(label=_("Grassroots union's share of the funds (%)"),
                                                  max_digits=5, decimal_places=2)
    dues_in_payroll = forms.BooleanField(label=_("Dues deducted in the payroll run"), required=False)
