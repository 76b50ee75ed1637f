"""Forms of the reconciliation pages (labels bilingual like the other tax pages)."""
from __future__ import annotations

from django import forms

from tax.forms import DATE

from .models import CaseState, Outcome


class RunNowForm(forms.Form):
    check_date = forms.DateField(label="对账日期 (check date)", widget=DATE)


class OutcomeFilterForm(forms.Form):
    outcome = forms.ChoiceField(label="结果 (outcome)", required=False, choices=[("", "全部 (any)")] + list(Outcome.choices))


class CaseFilterForm(forms.Form):
    state = forms.ChoiceField(label="状态 (state)", required=False, choices=[("", "全部 (any)")] + list(CaseState.choices))
    check_date = forms.DateField(label="对账日期 (check date)", required=False, widget=DATE)


class InvestigateForm(forms.Form):
    note = forms.CharField(label="说明 (note)", required=False, max_length=255)


class ResolveForm(forms.Form):
    reason = forms.CharField(label="处理说明 (resolution reason)", max_length=1000, widget=forms.Textarea(attrs={"rows": 3}))
