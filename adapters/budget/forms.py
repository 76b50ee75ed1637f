from django import forms

from adapters.budget.messages import OPERATIONS
from adapters.budget.models import BudgetMessage


class MessageFilterForm(forms.Form):
    operation = forms.ChoiceField(label="操作 (operation)", required=False,
                                  choices=[("", "全部 (all)")] + [(op, op) for op in OPERATIONS])
    key = forms.CharField(label="凭证号/报告号 (voucher or report number)", required=False, max_length=128)
    outcome = forms.ChoiceField(label="结果 (outcome)", required=False,
                                choices=[("", "全部 (all)")] + list(BudgetMessage.Outcome.choices))
