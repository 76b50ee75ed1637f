"""Reports of a reconciliation run: CSV (every result row the user may see, then the matched count: matched
serials have no row) and PDF (totals per outcome and
the discrepancies), with personal data masked as on the pages."""
from __future__ import annotations

import csv
import io

from django.utils import timezone

from fiscal_disbursement.documents import _Pages
from treasury.money import fen_to_yuan_str

from . import selectors
from .models import CONSISTENT_OUTCOMES, Outcome

PDF_PRINTED_LINES = 2000
CSV_HEADER = ["征收机关代码 tax_org_code", "委托日期 entrust_date", "交易流水号 tra_no", "结果 outcome",
              "税务方金额 tax_yuan", "本方状态 ours_state", "本方金额 ours_yuan", "入库金额 entered_yuan",
              "运营机构金额 operator_yuan", "税务方笔数 tax_count", "运营机构笔数 operator_count", "差异 case",
              "差异状态 case_state"]


def _yuan(fen) -> str:
    return "" if fen is None else fen_to_yuan_str(fen)


def result_row(result) -> list[str]:
    case = result.case
    return [result.tax_org_code, result.entrust_date.isoformat(), result.tra_no, result.outcome,
            _yuan(result.tax_amount_fen), result.ours_state, _yuan(result.ours_amount_fen),
            _yuan(result.entered_amount_fen), _yuan(result.operator_amount_fen), str(result.tax_count),
            str(result.operator_count), str(case.pk) if case else "", case.state if case else ""]


def run_csv(*, user, run) -> bytes:
    """UTF-8 with a BOM (spreadsheet programs read Chinese headers right)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for result in selectors.result_list(user=user, run=run).iterator(chunk_size=2000):
        writer.writerow(result_row(result))
    matched = next((item for item in selectors.run_totals(user=user, run_ids=[run.pk])[run.pk]["outcomes"]
                    if item["outcome"] == Outcome.MATCHED), None)
    writer.writerow(["相符 matched", str(matched["count"] if matched else 0)])
    return out.getvalue().encode("utf-8")


def run_pdf(*, user, run) -> bytes:
    totals = selectors.run_totals(user=user, run_ids=[run.pk])[run.pk]
    pages = _Pages(title=f"税款对账报告 {run.check_date:%Y-%m-%d}", subject="tax reconciliation report")
    pages.new_page(f"税款对账报告 (tax reconciliation) {run.check_date:%Y-%m-%d}")
    pages.row([(0, "征收机关 Tax authority"), (120, run.tax_org_code or "全部 all")], size=9, gap=15)
    pages.row([(0, "状态 State"), (120, run.get_state_display())], size=9, gap=15)
    pages.row([(0, "生成时间 Generated"), (120, f"{timezone.localtime():%Y-%m-%d %H:%M}")], size=9, gap=20)
    columns = [0, 190, 240, 320, 400]
    pages.row(list(zip(columns, ["结果 outcome", "笔数", "税务方(元)", "本方(元)", "运营机构(元)"])), size=8.5)
    pages.rule()
    for item in totals["outcomes"]:
        pages.row(list(zip(columns, [item["label"], str(item["count"]), fen_to_yuan_str(item["tax_fen"]),
                                     fen_to_yuan_str(item["ours_fen"]), fen_to_yuan_str(item["operator_fen"])])))
    pages.rule()
    pages.row(list(zip(columns, ["合计 Total", str(totals["count"]), fen_to_yuan_str(totals["tax_fen"]),
                                 fen_to_yuan_str(totals["ours_fen"]), fen_to_yuan_str(totals["operator_fen"])])),
              size=9, gap=24)
    pages.row([(0, f"差异 Discrepancies: {totals['discrepancies']}")], size=10, gap=16)
    columns = [0, 70, 130, 250, 310, 370, 430]
    header = list(zip(columns, ["征收机关", "流水号", "结果 outcome", "税务方(元)", "本方(元)", "运营机构(元)", "差异状态"]))
    pages.row(header, size=8.5)
    pages.rule()
    discrepancies = selectors.result_list(user=user, run=run).exclude(outcome__in=CONSISTENT_OUTCOMES)
    labels = dict(Outcome.choices)
    printed = 0
    for result in discrepancies[:PDF_PRINTED_LINES]:
        if pages.y < 60:
            pages.new_page(f"税款对账报告 (tax reconciliation) {run.check_date:%Y-%m-%d}")
            pages.row(header, size=8.5)
            pages.rule()
        pages.row(list(zip(columns, [result.tax_org_code, result.tra_no, labels.get(result.outcome, result.outcome),
                                     _yuan(result.tax_amount_fen), _yuan(result.ours_amount_fen),
                                     _yuan(result.operator_amount_fen),
                                     result.case.get_state_display() if result.case else ""])))
        printed += 1
    if totals["discrepancies"] > printed:
        pages.row([(0, f"另有 {totals['discrepancies'] - printed} 笔差异见 CSV (more in the CSV report)")], size=9)
    return pages.close()
