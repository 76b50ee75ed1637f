"""Forms of the declaration pages."""
from django import forms
from django.utils.translation import gettext_lazy as _

from social_security.models import DeclarationState, Region
from treasury.money import InvalidAmount, yuan_to_fen

PERIOD_HELP = _("YYYY-MM, e.g. 2026-03")


def _regions():
    return [(r.code, f"{r.code} {r.name}") for r in Region.objects.filter(fund_account__isnull=False).order_by("code")]


class NewDeclarationForm(forms.Form):
    """A new declaration: how its lines come in (entered one by one, a file, or a payroll batch)."""

    SOURCES = [("entered", _("Enter on the page")), ("imported", _("Import a file (CSV/XLSX)")),
               ("payroll", _("From a payroll batch"))]
    region = forms.ChoiceField(label=_("Insurance region"), choices=())
    period = forms.RegexField(label=_("Contribution period"), regex=r"^\d{4}-(0[1-9]|1[0-2])$", help_text=PERIOD_HELP,
                              error_messages={"invalid": _("The period must be YYYY-MM.")}, required=False)
    source = forms.ChoiceField(label=_("Lines from"), choices=SOURCES, widget=forms.RadioSelect, initial="entered")
    file = forms.FileField(label=_("Declaration file"), required=False)
    payroll_batch = forms.ChoiceField(label=_("Payroll batch"), required=False, choices=())

    def __init__(self, *args, payroll_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = _regions()
        self.fields["payroll_batch"].choices = [("", "—")] + list(payroll_choices)

    def clean(self):
        data = super().clean()
        source = data.get("source")
        if source == "imported" and not data.get("file"):
            self.add_error("file", _("Choose a file."))
        if source == "payroll" and not data.get("payroll_batch"):
            self.add_error("payroll_batch", _("Choose a payroll batch."))
        if source in ("entered", "imported") and not data.get("period") and "period" not in self.errors:
            self.add_error("period", _("Required."))  # once: a period typed wrong already says why
        return data


class LineForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    resident_id = forms.CharField(label=_("Resident ID"), max_length=18)
    base = forms.CharField(label=_("Base (yuan)"), max_length=20)

    def clean_base(self):
        try:
            return yuan_to_fen(self.cleaned_data["base"])
        except InvalidAmount as exc:
            raise forms.ValidationError(str(exc))


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=255)


class FilterForm(forms.Form):
    state = forms.ChoiceField(label=_("State"), required=False,
                              choices=[("", _("All"))] + list(DeclarationState.choices))
    period = forms.CharField(label=_("Period"), required=False, max_length=7)
