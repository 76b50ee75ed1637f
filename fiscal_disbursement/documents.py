"""PDF documents of fiscal disbursement: the payment voucher (支付凭证) and the daily disbursement report.

Per-payee receipts are the transfer core's signed receipts (treasury.receipts), one per settled line.

Both documents are A4 pages drawn with reportlab in the receipts' fonts (STSong-Light for Chinese,
Helvetica for figures), so they open in any viewer and their text can be extracted. The voucher
prints at most `VOUCHER_PRINTED_LINES` detail lines; every line is in the CSV attached to the PDF
(as receipts attach their data), so a 50,000-payee voucher stays a document a person can open.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field

from django.db.models import Count, Q, Sum
from django.utils import timezone

from treasury.identifiers import mask_resident_id, mask_wallet_id
from treasury.models import TransferState
from treasury.money import fen_to_capitals, fen_to_yuan_str, format_yuan
from treasury.receipts.pdf import REPORT_MARGIN, Attachment, ReportPages

from .models import PaymentLine, PaymentRequest, PayType

VOUCHER_PRINTED_LINES = 2000


def _mask_id(kind: str, number: str) -> str:
    return mask_resident_id(number) if kind == "resident" else number


def render_voucher_pdf(*, request: PaymentRequest) -> bytes:
    """The payment voucher of an approved request: its header, totals in figures and capitals, and the
    detail lines (personal data masked), with every line attached as CSV."""
    quota = request.quota
    pages = ReportPages(title=f"支付凭证 {request.voucher_no or request.bill_no}", subject="payment voucher")
    kind = "财政直接支付凭证" if request.pay_type == PayType.DIRECT else "财政授权支付凭证"
    pages.new_page(f"{kind} (payment voucher)")
    header = [
        ("凭证号 Voucher No", request.voucher_no or "（未审批 not approved）"),
        ("支付申请号 Bill No", request.bill_no),
        ("凭证日期 Date", f"{timezone.localtime(request.approved_at or request.created_at):%Y-%m-%d}"),
        ("区划 / 年度", f"{quota.adm_div_code} / {quota.fiscal_year}"),
        ("预算单位 Agency", f"{quota.agency_code} {quota.agency_name}"),
        ("指标 Quota", quota.quota_id),
        ("功能分类 / 经济分类", f"{request.exp_func_code} / {request.exp_eco_code}"),
        ("资金性质 Fund type", quota.fund_type_code),
        ("付款账户 Payer", f"{request.payer_wallet.holder_name} {request.payer_wallet.wallet_id}"),
        ("摘要 Purpose", request.title),
        ("笔数 Lines", str(request.line_count)),
        ("金额 Amount", f"{format_yuan(request.total_fen)}  {fen_to_capitals(request.total_fen)}"),
        ("状态 State", request.get_state_display()),
        ("经办 / 审批", " / ".join(filter(None, [
            request.prepared_by.username,
            request.first_approved_by.username if request.first_approved_by else "",
            request.approved_by.username if request.approved_by else "",
        ]))),
    ]
    if request.conditions:
        header.append(("专款专用条件 Earmark", _conditions_text(request.conditions)))
    for label, value in header:
        pages.row([(0, label), (130, value)], size=9, gap=15)
    pages.y -= 6
    columns = [(0, "序号"), (36, "业务追溯码 TrackingID"), (170, "收款人"), (260, "证件号码"), (360, "钱包"),
               (445, "金额(元)")]
    pages.row(columns, size=8.5)
    pages.rule()
    lines = request.lines.order_by("line_no").values_list("line_no", "payee_name", "id_kind", "id_number", "wallet_id",
                                                          "amount_fen")
    bill_no = request.bill_no
    csv_buffer = io.StringIO()
    writer = csv.writer(csv_buffer)
    writer.writerow(["line_no", "tracking_id", "payee_name", "id_number_masked", "wallet_id_masked", "amount_yuan"])
    printed = 0
    for line_no, name, kind_, number, wallet_id, amount in lines.iterator(chunk_size=5000):
        tracking = f"{bill_no}{line_no:06d}"
        cells = [str(line_no), tracking, name[:12], _mask_id(kind_, number), mask_wallet_id(wallet_id),
                 fen_to_yuan_str(amount)]
        writer.writerow(cells)
        if printed < VOUCHER_PRINTED_LINES:
            if pages.y < REPORT_MARGIN + 20:
                pages.new_page(f"{kind} {request.voucher_no} (续 continued)")
                pages.row(columns, size=8.5)
                pages.rule()
            pages.row(list(zip([x for x, _ in columns], cells)))
            printed += 1
    if printed < request.line_count:
        pages.y -= 6
        pages.row([(0, f"以上打印前 {printed} 笔，全部 {request.line_count} 笔见附件 voucher-lines.csv "
                       f"(first {printed} lines printed; all lines in the attached CSV)")], size=8)
    attachments = [Attachment(name="voucher-lines.csv", data=csv_buffer.getvalue().encode("utf-8-sig"),
                              mime_type="text/csv", description="voucher detail lines")]
    return pages.close(attachments)


def _conditions_text(conditions: dict) -> str:
    parts = []
    if conditions.get("payee_category"):
        parts.append(f"收款类别 {conditions['payee_category']}")
    if conditions.get("purposes"):
        parts.append("用途 " + ",".join(conditions["purposes"]))
    if conditions.get("allowed_payees"):
        parts.append(f"限定收款人 {len(conditions['allowed_payees'])} 个")
    if conditions.get("expires_at"):
        parts.append(f"截止 {conditions['expires_at'][:10]}")
    return "；".join(parts)


@dataclass(frozen=True)
class ClassificationTotal:
    exp_func_code: str
    exp_eco_code: str
    fund_type_code: str
    paid_count: int
    paid_fen: int
    returned_count: int
    returned_fen: int


@dataclass
class DailyReport:
    organization_name: str
    day: dt.date
    rows: list[ClassificationTotal] = field(default_factory=list)

    @property
    def paid_count(self) -> int:
        return sum(r.paid_count for r in self.rows)

    @property
    def paid_fen(self) -> int:
        return sum(r.paid_fen for r in self.rows)

    @property
    def returned_count(self) -> int:
        return sum(r.returned_count for r in self.rows)

    @property
    def returned_fen(self) -> int:
        return sum(r.returned_fen for r in self.rows)


def daily_report(*, organization, day: dt.date) -> DailyReport:
    """What an organization's requests paid and had returned on one business day (Asia/Shanghai), by
    functional and economic classification and fund type. A payment counts on the day it settled; a
    returned line on the day its last attempt ended."""
    start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    end = start + dt.timedelta(days=1)
    paid = Q(returned=False, transfer__state=TransferState.SETTLED, transfer__settled_at__gte=start,
             transfer__settled_at__lt=end)
    returned = Q(returned=True, transfer__finished_at__gte=start, transfer__finished_at__lt=end)
    rows = (
        PaymentLine.objects.filter(request__organization=organization).filter(paid | returned)
        .values("request__exp_func_code", "request__exp_eco_code", "request__quota__fund_type_code")
        .annotate(paid_count=Count("pk", filter=paid), paid_fen=Sum("amount_fen", filter=paid),
                  returned_count=Count("pk", filter=returned), returned_fen=Sum("amount_fen", filter=returned))
        .order_by("request__exp_func_code", "request__exp_eco_code", "request__quota__fund_type_code")
    )
    return DailyReport(organization_name=organization.name, day=day, rows=[
        ClassificationTotal(exp_func_code=r["request__exp_func_code"], exp_eco_code=r["request__exp_eco_code"],
                            fund_type_code=r["request__quota__fund_type_code"], paid_count=r["paid_count"],
                            paid_fen=r["paid_fen"] or 0, returned_count=r["returned_count"],
                            returned_fen=r["returned_fen"] or 0)
        for r in rows
    ])


def render_daily_report_pdf(*, organization, day: dt.date) -> bytes:
    report = daily_report(organization=organization, day=day)
    pages = ReportPages(title=f"财政资金支付日报 {day:%Y-%m-%d}", subject="daily disbursement report")
    pages.new_page(f"财政资金支付日报 (daily disbursement report) {day:%Y-%m-%d}")
    pages.row([(0, "单位 Organization"), (110, report.organization_name)], size=9, gap=15)
    pages.row([(0, "生成时间 Generated"), (110, f"{timezone.localtime():%Y-%m-%d %H:%M}")], size=9, gap=20)
    columns = [0, 80, 150, 200, 260, 360, 420]
    pages.row(list(zip(columns, ["功能分类", "经济分类", "资金性质", "支付笔数", "支付金额(元)", "退回笔数",
                                 "退回金额(元)"])), size=8.5)
    pages.rule()
    for r in report.rows:
        pages.row(list(zip(columns, [r.exp_func_code, r.exp_eco_code, r.fund_type_code, str(r.paid_count),
                                     fen_to_yuan_str(r.paid_fen), str(r.returned_count),
                                     fen_to_yuan_str(r.returned_fen)])))
    pages.rule()
    pages.row(list(zip(columns, ["合计 Total", "", "", str(report.paid_count), fen_to_yuan_str(report.paid_fen),
                                 str(report.returned_count), fen_to_yuan_str(report.returned_fen)])), size=9)
    pages.y -= 8
    pages.row([(0, f"支付合计大写：{fen_to_capitals(report.paid_fen)}")], size=9)
    return pages.close()
