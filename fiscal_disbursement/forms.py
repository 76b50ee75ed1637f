"""Forms of the fiscal disbursement pages and the request states as people read them."""
from __future__ import annotations

import datetime as dt
import re

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from treasury.business_days import BusinessDayField
from treasury.identifiers import InvalidIdentifier, validate_wallet_id
from treasury.services.transfers import Conditions  # the transfer core's name for e-CNY earmark conditions

from .models import PayType
from .models import RequestState as R

# The models' choices carry fixed bilingual labels (admin, exports); pages translate through these.
REQUEST_STATE_LABELS = {
    R.DRAFT: _("Draft"),
    R.SUBMITTED: _("Awaiting approval"),
    R.REJECTED: _("Sent back for changes"),
    R.APPROVED: _("Approved, voucher being sent"),
    R.VOUCHER_REFUSED: _("Voucher refused"),
    R.VOUCHER_ISSUED: _("Voucher accepted"),
    R.PAYING: pgettext_lazy("fiscal", "Paying"),
    R.PAID: pgettext_lazy("fiscal", "Paid"),
    R.PARTIALLY_PAID: pgettext_lazy("fiscal", "Partially paid"),
    R.FAILED: _("Payment failed"),
    R.REPORTING: _("Reporting results"),
    R.REPORTED: _("Results reported"),
    R.RECONCILED: _("Reconciled"),
    R.CANCELLED: pgettext_lazy("fiscal", "Cancelled"),
}

LINE_STATE_LABELS = {
    "returned_line": _("Returned"),
    "not_paid": pgettext_lazy("fiscal", "Not paid yet"),
    "pending": pgettext_lazy("fiscal", "Pending"),
    "submitted": pgettext_lazy("fiscal", "Paying"),
    "unknown": _("Outcome unknown"),
    "settled": pgettext_lazy("fiscal", "Paid"),
    "failed": _("Refused"),
    "returned": _("Returned by the operator"),
    "reversed": _("Reversed"),
    "cancelled": pgettext_lazy("fiscal", "Cancelled"),
}

LINE_FILTER_LABELS = {
    "all": _("All"),
    "paid": pgettext_lazy("fiscal", "Paid"),
    "failed": _("Failed"),
    "returned": _("Returned"),
    "open": _("Being paid"),
}

PAY_TYPE_LABELS = {PayType.DIRECT: _("Direct payment"), PayType.AUTHORISED: _("Authorised payment")}
PAYEE_CATEGORIES = [("", _("Any payee")), ("WT01", _("Personal wallets only (WT01)")),
                    ("WT09", _("Corporate wallets only (WT09)"))]
CODE_RE = re.compile(r"^[A-Z0-9_]{1,16}$")
ECO_CODE_RE = re.compile(r"^[0-9]{3}([0-9]{2})?$")  # budget.xsd's EcoCode (类 or 款): another could never be sent
MAX_ALLOWED_PAYEES = 10_000


def request_state_choices():
    return [(value, REQUEST_STATE_LABELS[value]) for value in R.values]


def _split(text: str) -> list[str]:
    return [part for part in re.split(r"[\s,;，；、]+", text or "") if part]


def spend_by(day: dt.date) -> dt.datetime:
    """The earmark's expiry: the end of the spend-by day in China Standard Time, its last microsecond (the operator
    refuses from the expiry on, so 23:59:59 would have refused the day's last second)."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.max))


class ConditionsFields(forms.Form):
    """Earmark (专款专用) conditions the operator enforces on every payment of the request."""

    payee_category = forms.ChoiceField(label=_("Payee category"), choices=PAYEE_CATEGORIES, required=False)
    allowed_purposes = forms.CharField(
        label=_("Allowed purpose codes"), required=False, max_length=400,
        help_text=_("Comma-separated, e.g. SUBSIDY. Empty: any purpose."))
    allowed_payees = forms.CharField(
        label=_("Allowed payee wallet ids"), required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text=_("One 16-digit wallet id per line. Empty: any payee."))
    spend_by_date = BusinessDayField(label=_("Spend by"), required=False,
                                    widget=forms.DateInput(attrs={"type": "date"}),
                                    help_text=_("The payments are refused after the end of this day."))

    def clean_allowed_purposes(self):
        codes = [code.upper() for code in _split(self.cleaned_data["allowed_purposes"])]
        bad = [code for code in codes if not CODE_RE.match(code)]
        if bad:
            raise forms.ValidationError(_("Not a purpose code: %(codes)s") % {"codes": ", ".join(bad[:5])})
        return tuple(dict.fromkeys(codes))

    def clean_allowed_payees(self):
        wallets = []
        for value in _split(self.cleaned_data["allowed_payees"]):
            try:
                wallets.append(validate_wallet_id(value))
            except InvalidIdentifier:
                raise forms.ValidationError(_("Not a 16-digit wallet id: %(value)s") % {"value": value[:40]})
        if len(wallets) > MAX_ALLOWED_PAYEES:
            raise forms.ValidationError(_("At most %(n)s wallet ids.") % {"n": MAX_ALLOWED_PAYEES})
        return tuple(dict.fromkeys(wallets))

    def clean_spend_by_date(self):
        day = self.cleaned_data["spend_by_date"]
        if day and day < timezone.localdate():
            raise forms.ValidationError(_("The spend-by date has passed."))
        return day

    def conditions(self) -> Conditions | None:
        data = self.cleaned_data
        conditions = Conditions(
            allowed_payees=data.get("allowed_payees") or (), payee_category=data.get("payee_category") or "",
            purposes=data.get("allowed_purposes") or (),
            expires_at=spend_by(data["spend_by_date"]) if data.get("spend_by_date") else None,
        )
        return None if conditions.is_empty() else conditions


class RequestForm(ConditionsFields):
    """A new payment request (支付申请) against a quota, with its payee file."""

    field_order = ["quota", "pay_type", "title", "purpose_code", "exp_eco_code", "payee_category", "allowed_purposes",
                   "allowed_payees", "spend_by_date", "file"]

    quota = forms.ChoiceField(label=_("Budget quota"))
    pay_type = forms.ChoiceField(label=_("Payment type"), choices=list(PAY_TYPE_LABELS.items()))
    title = forms.CharField(label=pgettext_lazy("fiscal", "Purpose"), max_length=140, widget=forms.TextInput(attrs={"size": 50}),
                            help_text=_("What the money is for, as the voucher and receipts show it."))
    purpose_code = forms.CharField(label=_("Purpose code"), max_length=16, initial="SUBSIDY",
                                   help_text=_("The payments' purpose code, e.g. SUBSIDY."))
    exp_eco_code = forms.CharField(label=_("Economic classification"), max_length=10, required=False,
                                   help_text=_("Empty: the quota's own economic classification."))
    file = forms.FileField(
        label=_("Payee file (CSV or XLSX)"), required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx"}),
        help_text=_("You can also upload it on the draft's page."))

    def __init__(self, *args, quotas, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["quota"].choices = [("", "—")] + [
            (q.quota_id, f"{q.quota_id} · {q.fiscal_year} · {q.agency_name} · {q.exp_func_code}/{q.exp_eco_code}")
            for q in quotas
        ]

    def clean_purpose_code(self):
        code = self.cleaned_data["purpose_code"].strip().upper()
        if not CODE_RE.match(code):
            raise forms.ValidationError(_("Use capital letters, digits and _ (at most 16)."))
        return code

    def clean_exp_eco_code(self):
        code = self.cleaned_data["exp_eco_code"].strip()
        if code and not ECO_CODE_RE.match(code):
            raise forms.ValidationError(_("An economic classification is 3 or 5 digits, e.g. 30305."))
        return code

    def clean(self):
        data = super().clean()
        purposes, code = data.get("allowed_purposes"), data.get("purpose_code")
        if purposes and code and code not in purposes:
            self.add_error("allowed_purposes", _(
                "The request's purpose code %(code)s is not among the allowed purposes: every payment would be "
                "refused.") % {"code": code})
        return data


class QuotaFilterForm(forms.Form):
    fiscal_year = forms.IntegerField(label=_("Fiscal year"), required=False, min_value=2000, max_value=2100)
    agency = forms.CharField(label=_("Budget unit"), required=False, max_length=100)
    classification = forms.CharField(label=_("Classification"), required=False, max_length=10,
                                     help_text=_("Functional or economic code (prefix)"))
    q = forms.CharField(label=_("Search"), required=False, max_length=100)


class QuotaSyncForm(forms.Form):
    fiscal_year = forms.IntegerField(label=_("Fiscal year"), required=False, min_value=2000, max_value=2100)
    agency_code = forms.CharField(label=_("Budget unit code"), required=False, max_length=20)


class RequestFilterForm(forms.Form):
    state = forms.ChoiceField(label=_("State"), required=False,
                              choices=[("", _("All states"))] + request_state_choices())
    q = forms.CharField(label=_("Search"), required=False, max_length=100)


class PayeeFileForm(forms.Form):
    file = forms.FileField(label=_("Payee file (CSV or XLSX)"),
                           widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx"}))


class AttachmentForm(forms.Form):
    file = forms.FileField(label=_("Supporting document"))


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=255, widget=forms.TextInput(attrs={"size": 40}))


class DailyReportForm(forms.Form):
    day = BusinessDayField(label=_("Date"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    organization = forms.IntegerField(required=False, widget=forms.HiddenInput)


def line_ids_from(data) -> list[int]:
    """The integers among the posted `line_ids` (a tampered value is dropped, not a 500)."""
    ids = []
    for value in data.getlist("line_ids") if hasattr(data, "getlist") else data.get("line_ids", []):
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            continue
    return ids
