"""Forms of the tax pages. Labels are English msgids translated by the tax catalog (the models' own verbose
names and choices stay bilingual); identifiers are checked again by the services, which give the
clerk-readable refusal."""
from __future__ import annotations

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from treasury.business_days import BusinessDayField
from treasury.money import yuan_to_fen

from .models import AgreementState, DeductionKind, PackageState, RefundOrderState
from .services import MAX_AMOUNT_FEN, VOUCHER_NUMBER

ALL = ("", _("All"))
RESULT_CODE_CHOICES = [
    ALL,
    ("90000", _("90000 Success")),
    ("24001", _("24001 No such wallet")),
    ("24004", _("24004 Wallet frozen")),
    ("24007", _("24007 Insufficient balance")),
    ("24008", _("24008 Other failure")),
    ("24009", _("24009 No agreement")),
    ("94999", _("94999 Outcome unknown")),
    ("E0001", _("E0001 Wallet class limit")),
    ("E0002", _("E0002 Smart-contract condition")),
]
AGREEMENT_ACTIONS = ("activate", "suspend", "resume", "revoke")
REASON_ACTIONS = ("suspend", "resume", "revoke")
DATE = forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})  # what a date input reads


class AgreementFilterForm(forms.Form):
    state = forms.ChoiceField(label=_("State"), required=False, choices=[ALL] + list(AgreementState.choices))
    taxpayer = forms.CharField(label=_("Taxpayer ID"), required=False, max_length=20)
    q = forms.CharField(label=_("Search"), required=False, max_length=100,
                        help_text=_("Agreement number or taxpayer name"))


class PackageFilterForm(forms.Form):
    state = forms.ChoiceField(label=_("State"), required=False, choices=[ALL] + list(PackageState.choices))


class RefundFilterForm(forms.Form):
    state = forms.ChoiceField(label=_("State"), required=False, choices=[ALL] + list(RefundOrderState.choices))


class SignAgreementForm(forms.Form):
    tax_org_code = forms.CharField(label=_("Tax authority code"), max_length=12)
    taxpayer_id = forms.CharField(label=_("Taxpayer ID"), max_length=20,
                                  help_text=_("Unified social credit code or resident ID"))
    taxpayer_name = forms.CharField(label=_("Taxpayer name"), max_length=200)
    wallet_id = forms.CharField(label=_("Payer wallet ID"), max_length=32, help_text=_("16-digit wallet ID"))
    protocol_no = forms.CharField(label=_("Agreement number"), max_length=60)
    signed_date = BusinessDayField(label=_("Signed date"), widget=DATE)

    def clean_signed_date(self):
        day = self.cleaned_data["signed_date"]
        if day > timezone.localdate():
            raise forms.ValidationError(_("The signed date cannot be in the future."))
        return day


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=255)


class EntrustDatesForm(forms.Form):
    date_from = BusinessDayField(label=_("Entrust date from"), required=False, widget=DATE)
    date_to = BusinessDayField(label=_("Entrust date to"), required=False, widget=DATE)


class DeductionFilterForm(EntrustDatesForm):
    result_code = forms.ChoiceField(label=_("Processing result"), required=False, choices=RESULT_CODE_CHOICES)
    kind = forms.ChoiceField(label=_("Kind"), required=False, choices=[ALL] + list(DeductionKind.choices))
    taxpayer = forms.CharField(label=_("Taxpayer ID or name"), required=False, max_length=200)


class EntryReportForm(forms.Form):
    day = BusinessDayField(label=_("Entry date"), required=False, widget=DATE)


def amount_fen(text: str) -> int:
    """A positive amount typed in yuan, as fen (the tax and the reconciliation forms)."""
    try:
        fen = yuan_to_fen(text.strip())
    except (ValueError, ArithmeticError, TypeError):
        raise forms.ValidationError(_("Enter an amount like 123.45."))
    if fen <= 0:
        raise forms.ValidationError(_("The amount must be more than zero."))
    if fen > MAX_AMOUNT_FEN:
        raise forms.ValidationError(_("The amount is more than a tax message can carry."))
    return fen


class MyTaxForm(forms.Form):
    """A tax voucher the signed-in individual pays from one of their own personal wallets (self-service)."""

    wallet_id = forms.ChoiceField(label=_("Pay from wallet"))
    tax_org_code = forms.ChoiceField(label=_("Tax authority"))
    tax_vou_no = forms.RegexField(label=_("Tax voucher number"), max_length=20, regex=VOUCHER_NUMBER,
                                  error_messages={"invalid": _("A tax voucher number is 1 to 20 letters or digits.")})
    amount = forms.CharField(label=_("Amount (yuan)"), max_length=20)
    tax_type_name = forms.CharField(label=_("Tax type"), max_length=60, initial="个人所得税", required=False)

    def __init__(self, *args, wallets: list[tuple[str, str]], authorities: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["wallet_id"].choices = wallets
        self.fields["tax_org_code"].choices = authorities

    def clean_amount(self):
        return amount_fen(self.cleaned_data["amount"])


class OwnTaxForm(forms.Form):
    """A tax voucher an individual pays from a personal wallet, entered at the tax hall's counter."""

    tax_org_code = forms.CharField(label=_("Tax authority code"), max_length=12)
    taxpayer_id = forms.CharField(label=_("Resident ID"), max_length=20)
    taxpayer_name = forms.CharField(label=_("Name"), max_length=200)
    wallet_id = forms.CharField(label=_("Personal wallet ID"), max_length=32)
    tax_vou_no = forms.RegexField(label=_("Tax voucher number"), max_length=20, regex=VOUCHER_NUMBER,
                                  error_messages={"invalid": _("A tax voucher number is 1 to 20 letters or digits.")})
    amount = forms.CharField(label=_("Amount (yuan)"), max_length=20)
    tax_type_name = forms.CharField(label=_("Tax type"), max_length=60, initial="个人所得税")

    def clean_amount(self):
        return amount_fen(self.cleaned_data["amount"])
