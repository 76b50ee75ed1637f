from django import forms
from django.utils.translation import gettext_lazy as _


class VerifyReceiptForm(forms.Form):
    file = forms.FileField(label=_("Receipt PDF file"), widget=forms.ClearableFileInput(attrs={"accept": "application/pdf"}))
