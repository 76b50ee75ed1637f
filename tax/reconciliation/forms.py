"""Forms of the reconciliation pages (labels are English msgids, like the other tax pages; the social insurance
reconciliation pages use them too)."""
from __future__ import annotations

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tax.forms import ALL, DATE, amount_fen
from treasury.business_days import BusinessDayField

from .models import CaseState, CorrectionKind, Outcome


class RunNowForm(forms.Form):
    check_date = BusinessDayField(label=_("Check date"), widget=DATE)

    def clean_check_date(self):
        day = self.cleaned_data["check_date"]
        if day > timezone.localdate():  # nothing to reconcile yet: the run would wait for ever
            raise forms.ValidationError(_("A day still to come cannot be reconciled: pick today or an earlier day."))
        return day


class OutcomeFilterForm(forms.Form):
    outcome = forms.ChoiceField(label=_("Outcome"), required=False, choices=[ALL] + list(Outcome.choices))


class CaseFilterForm(forms.Form):
    state = forms.ChoiceField(label=_("State"), required=False, choices=[ALL] + list(CaseState.choices))
    check_date = BusinessDayField(label=_("Check date"), required=False, widget=DATE)
    correction_proposed = forms.BooleanField(label=_("A correction waits for approval"), required=False)


class InvestigateForm(forms.Form):
    note = forms.CharField(label=_("Note"), required=False, max_length=255)


class ResolveForm(forms.Form):
    reason = forms.CharField(label=_("Resolution reason"), max_length=1000, widget=forms.Textarea(attrs={"rows": 3}))


class CorrectionForm(forms.Form):
    kind = forms.ChoiceField(label=_("Correction kind"), choices=CorrectionKind.choices)
    amount = forms.CharField(label=_("Amount (yuan)"), max_length=20)
    reason = forms.CharField(label=_("Reason"), max_length=255)

    def clean_amount(self):
        return amount_fen(self.cleaned_data["amount"])


class RejectCorrectionForm(forms.Form):
    reason = forms.CharField(label=_("Reason for rejecting"), max_length=255)
