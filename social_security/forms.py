"""Forms of the declaration pages."""
from django import forms

from social_security.models import DeclarationState, Region
from treasury.money import InvalidAmount, yuan_to_fen

PERIOD_HELP = "YYYY-MM，如 2026-03 (e.g. 2026-03)"


def _regions():
    return [(r.code, f"{r.code} {r.name}") for r in Region.objects.filter(fund_account__isnull=False).order_by("code")]


class NewDeclarationForm(forms.Form):
    """A new declaration: how its lines come in (entered one by one, a file, or a payroll batch)."""

    SOURCES = [("entered", "页面录入 (enter on the page)"), ("imported", "导入文件 (import CSV/XLSX)"),
               ("payroll", "取自工资表 (from a payroll batch)")]
    region = forms.ChoiceField(label="参保地 (region)", choices=())
    period = forms.RegexField(label="费款所属期 (period)", regex=r"^\d{4}-(0[1-9]|1[0-2])$", help_text=PERIOD_HELP,
                              error_messages={"invalid": "费款所属期应为YYYY-MM (period must be YYYY-MM)"}, required=False)
    source = forms.ChoiceField(label="明细来源 (lines from)", choices=SOURCES, widget=forms.RadioSelect,
                               initial="entered")
    file = forms.FileField(label="申报文件 (file)", required=False)
    payroll_batch = forms.ChoiceField(label="工资批次 (payroll batch)", required=False, choices=())

    def __init__(self, *args, payroll_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = _regions()
        self.fields["payroll_batch"].choices = [("", "—")] + list(payroll_choices)

    def clean(self):
        data = super().clean()
        source = data.get("source")
        if source == "imported" and not data.get("file"):
            self.add_error("file", "请选择文件 (choose a file)")
        if source == "payroll" and not data.get("payroll_batch"):
            self.add_error("payroll_batch", "请选择工资批次 (choose a payroll batch)")
        if source in ("entered", "imported") and not data.get("period"):
            self.add_error("period", "必填 (required)")
        return data


class LineForm(forms.Form):
    name = forms.CharField(label="姓名 (name)", max_length=100)
    resident_id = forms.CharField(label="身份证号 (resident ID)", max_length=18)
    base = forms.CharField(label="缴费基数(元) (base, yuan)", max_length=20)

    def clean_base(self):
        try:
            return yuan_to_fen(self.cleaned_data["base"])
        except InvalidAmount as exc:
            raise forms.ValidationError(str(exc))


class ReasonForm(forms.Form):
    reason = forms.CharField(label="原因 (reason)", max_length=255)


class FilterForm(forms.Form):
    state = forms.ChoiceField(label="状态 (state)", required=False,
                              choices=[("", "全部 (any)")] + list(DeclarationState.choices))
    period = forms.CharField(label="所属期 (period)", required=False, max_length=7)
