from django import forms

from adapters.tips.messages import MESSAGE_NUMBERS
from adapters.tips.models import TipsMessage


class MessageFilterForm(forms.Form):
    msg_no = forms.ChoiceField(label="报文编号 (MsgNo)", required=False,
                               choices=[("", "全部 (all)")] + [(n, n) for n in MESSAGE_NUMBERS])
    direction = forms.ChoiceField(label="方向 (direction)", required=False,
                                  choices=[("", "全部 (all)")] + list(TipsMessage.Direction.choices))
    key = forms.CharField(label="业务键 (key)", required=False, max_length=64)
    msg_id = forms.CharField(label="报文标识号 (MsgID / MsgRef)", required=False, max_length=20)
    result = forms.CharField(label="处理码 (result code)", required=False, max_length=8)
