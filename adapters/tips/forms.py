from django import forms
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from adapters.tips.messages import MESSAGE_NUMBERS
from adapters.tips.models import MESSAGE_NAMES, TipsMessage


class MessageFilterForm(forms.Form):
    msg_no = forms.ChoiceField(label=_("Message no."), required=False,
                               choices=[("", _("All"))] + [(n, format_lazy("{} {}", n, MESSAGE_NAMES[n]))
                                                         for n in sorted(MESSAGE_NUMBERS)])
    direction = forms.ChoiceField(label=_("Direction"), required=False,
                                  choices=[("", _("All"))] + list(TipsMessage.Direction.choices))
    key = forms.CharField(label=_("Business key"), required=False, max_length=64)
    msg_id = forms.CharField(label=_("Message id (MsgID / MsgRef)"), required=False, max_length=20)
    result = forms.CharField(label=_("Result code"), required=False, max_length=8)
