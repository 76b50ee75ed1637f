"""Forms of the flexible-employment pages (labels translated: English msgids, Chinese in the app's catalog); the
services check everything again and give the refusal a person reads."""
from __future__ import annotations

from datetime import date

from django import forms
from django.utils.translation import gettext_lazy as _

from social_security.models import FundAccount

from .models import Frequency
from .services import BASE_LEVELS

LEVEL_CHOICES = [(level, f"{level}%") for level in BASE_LEVELS]


def level_choices(levels) -> list[tuple[int, str]]:
    """Levels with the base they give this year, e.g. "100% · ¥7,800.00"."""
    from treasury.money import format_yuan

    return [(b.level, f"{b.level}% · {format_yuan(b.base_fen)}" + (f" ({b.note})" if b.note else "")) for b in levels]


class EnrolForm(forms.Form):
    region = forms.ChoiceField(label=_("Pooling region"))
    base_level = forms.TypedChoiceField(label=_("Base level (percent of the local average wage)"), coerce=int,
                                        choices=LEVEL_CHOICES, initial=100)
    frequency = forms.ChoiceField(label=_("Payment frequency"), choices=Frequency.choices)
    wallet_id = forms.CharField(label=_("Your personal wallet id"), max_length=16,
                                help_text=_("16 digits; a personal wallet in your own name"))
    start_month = forms.CharField(label=_("First month owed"), max_length=7,
                                  widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"}))

    def __init__(self, *args, levels=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = [(f.region.code, str(f.region))
                                         for f in FundAccount.objects.select_related("region").order_by("region__code")]
        if levels:
            self.fields["base_level"].choices = level_choices(levels)

    def clean_start_month(self) -> date:
        return _month(self.cleaned_data["start_month"])


class ChangeForm(forms.Form):
    base_level = forms.TypedChoiceField(label=_("Base level"), coerce=int, choices=LEVEL_CHOICES)
    frequency = forms.ChoiceField(label=_("Payment frequency"), choices=Frequency.choices)

    def __init__(self, *args, levels=None, **kwargs):
        super().__init__(*args, **kwargs)
        if levels:
            self.fields["base_level"].choices = level_choices(levels)


class StaffFilterForm(forms.Form):
    region = forms.CharField(label=_("Region code"), required=False, max_length=6)
    q = forms.CharField(label=_("Name or resident ID"), required=False, max_length=40)
    arrears = forms.BooleanField(label=_("In arrears only"), required=False)


def _month(text: str) -> date:
    try:
        year, month = (int(part) for part in text.strip().split("-")[:2])
        return date(year, month, 1)
    except (ValueError, TypeError):
        raise forms.ValidationError(_("Enter a month like 2026-09.")) from None
