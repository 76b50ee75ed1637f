"""The statement of contribution history (缴费记录) of one enrolment as a PDF: the person (ID masked), every
month made with its base, premiums by type, late fee, state and paid date, and the totals.

A4 portrait, as many pages as the months need; Chinese in the PDF standard CJK font (STSong-Light, no font
file to ship; pypdf and every viewer extract the text) through treasury.receipts.pdf.PageText.
"""
from __future__ import annotations

import io
from datetime import datetime

from django.utils import timezone
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas as rl_canvas

from treasury.identifiers import mask_resident_id, mask_wallet_id
from treasury.money import fen_to_yuan_str, format_yuan
from treasury.receipts import pdf

from .models import Enrolment, PeriodState

MARGIN = 36.0
ROW = 13.0
# Columns: (Chinese, English, x of the right edge for figures / left edge for text, right-aligned?)
COLUMNS = [
    ("月份", "Month", 36.0, False),
    ("档次", "Level", 100.0, True),
    ("缴费基数", "Base", 160.0, True),
    ("养老", "Pension", 215.0, True),
    ("个人账户", "Personal acct", 275.0, True),
    ("医疗", "Medical", 330.0, True),
    ("滞纳金", "Late fee", 380.0, True),
    ("合计", "Total", 440.0, True),
    ("状态", "State", 452.0, False),
    ("缴费日期", "Paid", 500.0, False),
]
STATE_SHORT = {PeriodState.DUE: "待缴 due", PeriodState.PAYING: "缴费中 paying", PeriodState.PAID: "已缴 paid"}


def _width(text: str, size: float) -> float:
    font = pdf.LATIN_FONT if pdf._is_latin(text) else pdf.CJK_FONT
    return stringWidth(text, font, size)


class _Sheet:
    def __init__(self, c):
        self.c = c
        self.width, self.height = A4
        self.text = pdf.PageText(c)
        self.y = self.height - MARGIN - 10
        self.lines: list[str] = []

    def put(self, x: float, text: str, size: float, *, bold: bool = False, right: bool = False) -> None:
        if right:
            x -= _width(text, size)
        self.text.put(x, self.y, text, size, bold=bold)

    def rule(self, width_pt: float = 0.3) -> None:
        y = self.y - 4
        self.lines.append("%.2f w %.2f %.2f m %.2f %.2f l S" % (width_pt, MARGIN, y, self.width - MARGIN, y))

    def down(self, rows: float = 1.0) -> None:
        self.y -= ROW * rows

    def full(self) -> bool:
        return self.y < MARGIN + 3 * ROW

    def finish(self) -> None:
        self.c.drawText(self.text.obj)
        if self.lines:
            self.c._code.append(" ".join(self.lines))
        self.c.showPage()


def _header_rows(sheet: _Sheet) -> None:
    for chinese, english, x, right in COLUMNS:
        sheet.put(x, chinese, 8, right=right)
    sheet.down(0.8)
    for chinese, english, x, right in COLUMNS:
        sheet.put(x, english, 6, right=right)
    sheet.rule(0.6)
    sheet.down()


def statement_pdf(*, enrolment: Enrolment, now: datetime) -> bytes:
    """The whole history of an enrolment as PDF bytes. No database writes. `now` is printed (aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    pdf.register_fonts()
    person = enrolment.person
    periods = list(enrolment.periods.order_by("month"))
    buffer = io.BytesIO()
    c = rl_canvas.Canvas(buffer, pagesize=A4, pageCompression=1)
    c.setTitle(f"社会保险缴费记录 {enrolment.region.code} {enrolment.pk}")
    c.setSubject("Statement of social-insurance contributions")
    c.setAuthor(enrolment.collecting_authority.name)
    sheet = _Sheet(c)
    sheet.put(MARGIN, "灵活就业人员社会保险缴费记录", 15)
    sheet.down(1.3)
    sheet.put(MARGIN, "Statement of contributions, flexible employment", 9, bold=True)
    sheet.rule(1.0)
    sheet.down(1.6)
    facts = [
        ("参保人 Insured person", person.name),
        ("公民身份号码 Resident ID", mask_resident_id(person.resident_id)),
        ("统筹地区 Region", f"{enrolment.region.code} {enrolment.region.name}"),
        ("征收机关 Collected by", enrolment.collecting_authority.name),
        ("缴费钱包 Paying wallet", mask_wallet_id(enrolment.wallet.wallet_id)),
        ("缴费档次 / 方式 Level / frequency", f"{enrolment.base_level}% / {enrolment.get_frequency_display()}"),
        ("起缴月份 First month", f"{enrolment.start_month:%Y-%m}"),
        ("打印时间 Printed at", timezone.localtime(now).strftime("%Y-%m-%d %H:%M")),
    ]
    for label, value in facts:
        sheet.put(MARGIN, label, 8.5)
        sheet.put(MARGIN + 200, value, 9)
        sheet.down()
    sheet.down(0.5)
    sheet.put(MARGIN, "单位: 元 (amounts in yuan)", 7)
    sheet.down()
    _header_rows(sheet)
    for period in periods:
        if sheet.full():
            sheet.finish()
            sheet = _Sheet(c)
            _header_rows(sheet)
        paid = period.state == PeriodState.PAID
        values = [
            f"{period.month:%Y-%m}", f"{period.base_level}%", fen_to_yuan_str(period.base_fen),
            fen_to_yuan_str(period.pension_fen), fen_to_yuan_str(period.pension_account_fen),
            fen_to_yuan_str(period.medical_fen), fen_to_yuan_str(period.late_fee_fen) if paid else "-",
            fen_to_yuan_str(period.total_fen + (period.late_fee_fen if paid else 0)),
            STATE_SHORT[period.state],
            timezone.localtime(period.paid_at).strftime("%Y-%m-%d") if paid and period.paid_at else "-",
        ]
        for (chinese, english, x, right), value in zip(COLUMNS, values):
            sheet.put(x, value, 7.5, right=right)
        sheet.rule()
        sheet.down()
    paid_rows = [p for p in periods if p.state == PeriodState.PAID]
    open_rows = [p for p in periods if p.state != PeriodState.PAID]
    totals = [
        ("已缴月数 Months paid", str(len(paid_rows))),
        ("已缴社保费 Premiums paid", format_yuan(sum(p.total_fen for p in paid_rows))),
        ("其中养老 / 个人账户 / 医疗 Pension / personal account / medical",
         " / ".join(format_yuan(sum(getattr(p, f) for p in paid_rows))
                    for f in ("pension_fen", "pension_account_fen", "medical_fen"))),
        ("已缴滞纳金 Late fees paid", format_yuan(sum(p.late_fee_fen for p in paid_rows))),
        ("已缴合计 Total paid", format_yuan(sum(p.total_fen + p.late_fee_fen for p in paid_rows))),
        ("未缴月数 / 金额 Months not paid / amount (late fees not included)",
         f"{len(open_rows)} / {format_yuan(sum(p.total_fen for p in open_rows))}"),
    ]
    if sheet.y < MARGIN + (len(totals) + 2) * ROW:
        sheet.finish()
        sheet = _Sheet(c)
    sheet.down(0.5)
    for label, value in totals:
        sheet.put(MARGIN, label, 8.5)
        sheet.put(sheet.width - MARGIN, value, 9, bold=pdf._is_latin(value), right=True)
        sheet.rule()
        sheet.down()
    sheet.down(0.5)
    sheet.put(MARGIN, "每笔缴费的电子回单可在“缴费记录”页下载并验证 (each payment's signed receipt is on the payments page)", 7)
    sheet.finish()
    c.save()
    return buffer.getvalue()
