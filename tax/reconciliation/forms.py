"""Forms of the reconciliation pages (labels bilingual like the other tax pages)."""
from __future__ import annotations

from django import forms

from tax.forms import DATE
from treasury.money import yuan_to_fen

from .models import CaseState, CorrectionKind, Outcome


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


class CorrectionForm(forms.Form):
    kind = forms.ChoiceField(label="更正方式 (kind)", choices=CorrectionKind.choices)
    amount = forms.CharField(label="金额（元） (amount, yuan)", max_length=20)
    reason = forms.CharField(label="原因 (reason)", max_length=255)

    def clean_amount(self):
        try:
            fen = yuan_to_fen(self.cleaned_data["amount"].strip())
        except (ValueError, ArithmeticError, TypeError):
            raise forms.ValidationError("金额格式应如 123.45 (an amount like 123.45)")
        if fen <= 0:
            raise forms.ValidationError("金额必须大于零 (the amount must be more than zero)")
        return fen


class RejectCorrectionForm(forms.Form):
    reason = forms.CharField(label="拒绝原因 (reason)", max_length=255)
