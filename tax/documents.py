"""PDF documents of the tax domain: the daily treasury entry report (国库入库日报), the page's table on A4 as the
treasury and the tax authority file it: by tax type and budget level with the central and local shares, the total
in figures and in capitals. (Reconciliation reports: tax.reconciliation.documents.)"""
from __future__ import annotations

from django.utils import timezone

from treasury.money import fen_to_capitals, fen_to_yuan_str
from treasury.receipts.pdf import REPORT_MARGIN, ReportPages

_COLUMNS = [0, 130, 215, 300, 375, 445]
_HEADER = ["税种 Tax type", "预算种类 Budget type", "预算级次 Level", "金额(元) Amount", "中央级(元) Central",
           "地方级(元) Local"]


def entry_report_pdf(report: dict, *, authority: str) -> bytes:
    """`report` as `tax.views.entry_report_data` makes it; `authority`: whose entries they are."""
    day = report["day"]
    title = f"国库入库日报 (daily treasury entries) {day:%Y-%m-%d}"
    pages = ReportPages(title=title, subject="daily treasury entry report")
    pages.new_page(title)
    for label, value in (("征收机关 Tax authority", authority), ("入库日期 Entry date", f"{day:%Y-%m-%d}"),
                         ("生成时间 Generated", f"{timezone.localtime():%Y-%m-%d %H:%M}")):
        pages.row([(0, label), (120, value)], size=9, gap=15)
    pages.y -= 8
    header = list(zip(_COLUMNS, _HEADER))
    pages.row(header, size=8.5)
    pages.rule()
    for row in report["rows"]:
        if pages.y < REPORT_MARGIN + 40:
            pages.new_page(title)
            pages.row(header, size=8.5)
            pages.rule()
        pages.row(list(zip(_COLUMNS, [row["tax_type_name"] or "—", row["budget_type_label"], row["budget_level_label"],
                                      *(fen_to_yuan_str(row[k]) for k in ("amount_fen", "central_fen", "local_fen"))])))
    if not report["rows"]:
        pages.row([(0, "本日无入库 (nothing was credited to the treasury on this day)")])
    pages.rule()
    pages.row(list(zip(_COLUMNS, ["合计 Total", "", "", *(fen_to_yuan_str(report[k])
                                                         for k in ("amount_fen", "central_fen", "local_fen"))])),
              size=9, gap=18)
    pages.row([(0, "大写 In capitals"), (120, fen_to_capitals(report["amount_fen"]))], size=9)
    return pages.close()
