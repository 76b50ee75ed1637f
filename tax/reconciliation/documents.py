"""Reports of a reconciliation run: CSV (every result row the user may see, then the matched count: matched
serials have no row) and PDF (totals per outcome and
the discrepancies), with personal data masked as on the pages."""
from __future__ import annotations

from django.utils import timezone

from treasury.exports import csv_bytes, yuan
from treasury.money import fen_to_yuan_str
from treasury.receipts.pdf import ReportPages

from . import selectors
from .models import CONSISTENT_OUTCOMES, Outcome

PDF_PRINTED_LINES = 2000
CSV_HEADER = ["征收机关代码 tax_org_code", "委托日期 entrust_date", "交易流水号 tra_no", "结果 outcome",
              "税务方金额 tax_yuan", "本方状态 ours_state", "本方金额 ours_yuan", "入库金额 entered_yuan",
              "运营机构金额 operator_yuan", "税务方笔数 tax_count", "运营机构笔数 operator_count", "差异 case",
              "差异状态 case_state"]


def _yuan(fen) -> str:
    """An amount as the PDF prints it ("" for none)."""
    return "" if fen is None else fen_to_yuan_str(fen)


def result_row(result) -> list:
    case = result.case
    return [result.tax_org_code, result.entrust_date.isoformat(), result.tra_no, result.outcome,
            yuan(result.tax_amount_fen), result.ours_state, yuan(result.ours_amount_fen),
            yuan(result.entered_amount_fen), yuan(result.operator_amount_fen), str(result.tax_count),
            str(result.operator_count), str(case.pk) if case else "", case.state if case else ""]


def report_pdf(*, title: str, subject: str, facts: list[tuple[str, str]], total_columns: list[int],
               total_header: list[str], total_rows: list[list[str]], total_row: list[str], discrepancies: int,
               detail_columns: list[int], detail_header: list[str], detail_rows) -> bytes:
    """A reconciliation report as PDF: facts, totals per outcome with a total line, then up to
    PDF_PRINTED_LINES discrepancy rows (the header repeated on each page) and how many more the CSV has.
    Shared with social insurance."""
    pages = ReportPages(title=title, subject=subject)
    pages.new_page(title)
    for i, (label, value) in enumerate(facts):
        pages.row([(0, label), (120, value)], size=9, gap=20 if i == len(facts) - 1 else 15)
    pages.row(list(zip(total_columns, total_header)), size=8.5)
    pages.rule()
    for row in total_rows:
        pages.row(list(zip(total_columns, row)))
    pages.rule()
    pages.row(list(zip(total_columns, total_row)), size=9, gap=24)
    pages.row([(0, f"差异 Discrepancies: {discrepancies}")], size=10, gap=16)
    header = list(zip(detail_columns, detail_header))
    pages.row(header, size=8.5)
    pages.rule()
    printed = 0
    for row in detail_rows:
        if printed >= PDF_PRINTED_LINES:
            break
        if pages.y < 60:
            pages.new_page(title)
            pages.row(header, size=8.5)
            pages.rule()
        pages.row(list(zip(detail_columns, row)))
        printed += 1
    if discrepancies > printed:
        pages.row([(0, f"另有 {discrepancies - printed} 笔差异见 CSV (more in the CSV report)")], size=9)
    return pages.close()


def run_csv(*, user, run) -> bytes:
    matched = next((item for item in selectors.run_totals(user=user, run_ids=[run.pk])[run.pk]["outcomes"]
                    if item["outcome"] == Outcome.MATCHED), None)
    return csv_bytes(header=CSV_HEADER,
                     rows=(result_row(r) for r in selectors.result_list(user=user, run=run).iterator(chunk_size=2000)),
                     trailer=["相符 matched", str(matched["count"] if matched else 0)])


def run_pdf(*, user, run) -> bytes:
    totals = selectors.run_totals(user=user, run_ids=[run.pk])[run.pk]
    labels = dict(Outcome.choices)
    discrepancies = selectors.result_list(user=user, run=run).exclude(outcome__in=CONSISTENT_OUTCOMES)
    return report_pdf(
        title=f"税款对账报告 (tax reconciliation) {run.check_date:%Y-%m-%d}", subject="tax reconciliation report",
        facts=[("征收机关 Tax authority", run.tax_org_code or "全部 all"), ("状态 State", run.get_state_display()),
               ("生成时间 Generated", f"{timezone.localtime():%Y-%m-%d %H:%M}")],
        total_columns=[0, 250, 295, 370, 445], total_header=["结果 outcome", "笔数", "税务方(元)", "本方(元)", "运营机构(元)"],
        total_rows=[[item["label"], str(item["count"]), fen_to_yuan_str(item["tax_fen"]),
                     fen_to_yuan_str(item["ours_fen"]), fen_to_yuan_str(item["operator_fen"])]
                    for item in totals["outcomes"]],
        total_row=["合计 Total", str(totals["count"]), fen_to_yuan_str(totals["tax_fen"]),
                   fen_to_yuan_str(totals["ours_fen"]), fen_to_yuan_str(totals["operator_fen"])],
        discrepancies=totals["discrepancies"], detail_columns=[0, 70, 130, 250, 310, 370, 430],
        detail_header=["征收机关", "流水号", "结果 outcome", "税务方(元)", "本方(元)", "运营机构(元)", "差异状态"],
        detail_rows=([r.tax_org_code, r.tra_no, labels.get(r.outcome, r.outcome), _yuan(r.tax_amount_fen),
                      _yuan(r.ours_amount_fen), _yuan(r.operator_amount_fen),
                      r.case.get_state_display() if r.case else ""]
                     for r in discrepancies[:PDF_PRINTED_LINES]))
