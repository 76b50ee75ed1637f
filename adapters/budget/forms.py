from django import forms
from django.utils.translation import gettext_lazy as _

from adapters.budget.messages import OPERATIONS
from adapters.budget.models import BudgetMessage


class MessageFilterForm(forms.Form):
    operation = forms.ChoiceField(label=_("Operation"), required=False,
                                  choices=[("", _("All"))] + [(op, op) for op in OPERATIONS])
    key = forms.CharField(label=_("Voucher or report number"), required=False, max_length=128)
    outcome = forms.ChoiceField(label=_("Outcome"), required=False,
                                choices=[("", _("All"))] + list(BudgetMessage.Outcome.choices))
