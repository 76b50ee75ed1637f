"""Forms of the tax pages. Labels are bilingual (中文 first, English in brackets) like the models' own
verbose names and the TIPS pages; identifiers are checked again by the services, which give the
clerk-readable refusal."""
from __future__ import annotations

from django import forms
from django.utils import timezone

from treasury.money import yuan_to_fen

from .models import AgreementState, DeductionKind

RESULT_CODE_CHOICES = [
    ("", "全部 (any)"),
    ("90000", "90000 成功 (success)"),
    ("24001", "24001 钱包不存在 (no such wallet)"),
    ("24004", "24004 钱包冻结 (wallet frozen)"),
    ("24007", "24007 余额不足 (insufficient balance)"),
    ("24008", "24008 其他失败 (other failure)"),
    ("24009", "24009 未签约 (no agreement)"),
    ("94999", "94999 结果未明 (outcome unknown)"),
    ("E0001", "E0001 钱包等级限额 (wallet class limit)"),
    ("E0002", "E0002 智能合约条件 (smart-contract condition)"),
]
AGREEMENT_ACTIONS = ("activate", "suspend", "resume", "revoke")
REASON_ACTIONS = ("suspend", "resume", "revoke")
DATE = forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})  # what a date input reads


class AgreementFilterForm(forms.Form):
    state = forms.ChoiceField(label="状态 (state)", required=False,
                              choices=[("", "全部 (any)")] + list(AgreementState.choices))
    taxpayer = forms.CharField(label="纳税人识别号 (taxpayer id)", required=False, max_length=20)
    q = forms.CharField(label="搜索 (search)", required=False, max_length=100,
                        help_text="协议书号或纳税人名称 (agreement number or taxpayer name)")


class SignAgreementForm(forms.Form):
    tax_org_code = forms.CharField(label="征收机关代码 (tax authority code)", max_length=12)
    taxpayer_id = forms.CharField(label="纳税人识别号 (taxpayer id)", max_length=20,
                                  help_text="统一社会信用代码或居民身份证号 (credit code or resident ID)")
    taxpayer_name = forms.CharField(label="纳税人名称 (taxpayer name)", max_length=200)
    wallet_id = forms.CharField(label="缴款钱包ID (payer wallet id)", max_length=32,
                                help_text="16位数字钱包编号 (16-digit wallet id)")
    protocol_no = forms.CharField(label="协议书号 (agreement number)", max_length=60)
    signed_date = forms.DateField(label="签约日期 (signed date)", widget=DATE)

    def clean_signed_date(self):
        day = self.cleaned_data["signed_date"]
        if day > timezone.localdate():
            raise forms.ValidationError("签约日期不能晚于今天 (the signed date cannot be in the future)")
        return day


class ReasonForm(forms.Form):
    reason = forms.CharField(label="原因 (reason)", max_length=255)


class EntrustDatesForm(forms.Form):
    date_from = forms.DateField(label="委托日期自 (entrust date from)", required=False, widget=DATE)
    date_to = forms.DateField(label="至 (to)", required=False, widget=DATE)


class DeductionFilterForm(EntrustDatesForm):
    result_code = forms.ChoiceField(label="处理结果 (result code)", required=False, choices=RESULT_CODE_CHOICES)
    kind = forms.ChoiceField(label="类别 (kind)", required=False,
                             choices=[("", "全部 (any)")] + list(DeductionKind.choices))
    taxpayer = forms.CharField(label="纳税人 (taxpayer id or name)", required=False, max_length=200)


class EntryReportForm(forms.Form):
    day = forms.DateField(label="入库日期 (entry date)", required=False, widget=DATE)


def _amount_fen(text: str) -> int:
    """A positive amount typed in yuan, as fen."""
    try:
        fen = yuan_to_fen(text.strip())
    except (ValueError, ArithmeticError, TypeError):
        raise forms.ValidationError("金额格式应如 123.45 (an amount like 123.45)")
    if fen <= 0:
        raise forms.ValidationError("金额必须大于零 (the amount must be more than zero)")
    return fen


class MyTaxForm(forms.Form):
    """A tax voucher the signed-in individual pays from one of their own personal wallets (self-service)."""

    wallet_id = forms.ChoiceField(label="付款钱包 (pay from wallet)")
    tax_org_code = forms.ChoiceField(label="征收机关 (tax authority)")
    tax_vou_no = forms.CharField(label="税票号码 (tax voucher number)", max_length=20)
    amount = forms.CharField(label="金额（元） (amount, yuan)", max_length=20)
    tax_type_name = forms.CharField(label="税种 (tax type)", max_length=60, initial="个人所得税", required=False)

    def __init__(self, *args, wallets: list[tuple[str, str]], authorities: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["wallet_id"].choices = wallets
        self.fields["tax_org_code"].choices = authorities

    def clean_amount(self):
        return _amount_fen(self.cleaned_data["amount"])


class OwnTaxForm(forms.Form):
    """A tax voucher an individual pays from a personal wallet, entered at the tax hall's counter."""

    tax_org_code = forms.CharField(label="征收机关代码 (tax authority code)", max_length=12)
    taxpayer_id = forms.CharField(label="居民身份证号 (resident ID)", max_length=20)
    taxpayer_name = forms.CharField(label="姓名 (name)", max_length=200)
    wallet_id = forms.CharField(label="个人钱包ID (personal wallet id)", max_length=32)
    tax_vou_no = forms.CharField(label="税票号码 (tax voucher number)", max_length=20)
    amount = forms.CharField(label="金额（元） (amount, yuan)", max_length=20)
    tax_type_name = forms.CharField(label="税种 (tax type)", max_length=60, initial="个人所得税")

    def clean_amount(self):
        return _amount_fen(self.cleaned_data["amount"])
