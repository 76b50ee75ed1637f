"""Reports of a day's premium reconciliation: CSV (every result the user may see, matched ones too) and PDF
(totals per outcome and the discrepancies), on the tax reconciliation engine's report helpers."""
from __future__ import annotations

from django.utils import timezone

from social_security import selectors
from social_security.models import ReconciliationOutcome, ReconciliationSource
from tax.reconciliation.documents import PDF_PRINTED_LINES, report_pdf
from treasury.exports import csv_bytes, yuan
from treasury.money import fen_to_yuan_str

CSV_HEADER = ["来源 source", "征收机关 tax_authority", "请求幂等键 request_id", "申报/缴费编号 document_no",
              "结果 outcome", "本方金额 ours_yuan", "应缴金额 expected_yuan", "运营机构金额 operator_yuan",
              "运营机构笔数 operator_count", "税务已确认 acknowledged", "差异 case", "差异状态 case_state"]


def _yuan(fen) -> str:
    return "" if fen is None else fen_to_yuan_str(fen)


def result_row(r) -> list:
    return [r.source, r.tax_authority.code if r.tax_authority_id else "", r.request_id, r.document_no, r.outcome,
            yuan(r.ours_fen), yuan(r.expected_fen), yuan(r.operator_fen), str(r.operator_count),
            "1" if r.acknowledged else "0", str(r.case_id or ""), r.case.state if r.case_id else ""]


def run_csv(*, user, run) -> bytes:
    results = selectors.run_results(user=user, run=run).select_related("tax_authority")
    return csv_bytes(header=CSV_HEADER, rows=(result_row(r) for r in results.iterator(chunk_size=2000)))


def run_pdf(*, user, run) -> bytes:
    totals = selectors.run_totals(user=user, run_ids=[run.pk])[run.pk]
    sources, outcomes = dict(ReconciliationSource.choices), dict(ReconciliationOutcome.choices)
    discrepancies = (selectors.run_results(user=user, run=run).exclude(outcome=ReconciliationOutcome.MATCHED)
                     [:PDF_PRINTED_LINES])
    return report_pdf(
        title=f"社保费对账报告 (premium reconciliation) {run.check_date:%Y-%m-%d}",
        subject="social-insurance premium reconciliation report",
        facts=[("对账日期 Check date", f"{run.check_date:%Y-%m-%d}"), ("执行次数 Times run", str(run.runs)),
               ("生成时间 Generated", f"{timezone.localtime():%Y-%m-%d %H:%M}")],
        total_columns=[0, 220, 280, 370], total_header=["结果 outcome", "笔数", "本方(元)", "运营机构(元)"],
        total_rows=[[item["label"], str(item["count"]), fen_to_yuan_str(item["ours_fen"]),
                     fen_to_yuan_str(item["operator_fen"])] for item in totals["outcomes"]],
        total_row=["合计 Total", str(totals["count"]), fen_to_yuan_str(totals["ours_fen"]),
                   fen_to_yuan_str(totals["operator_fen"])],
        discrepancies=totals["discrepancies"], detail_columns=[0, 60, 140, 270, 330, 390, 440],
        detail_header=["来源", "编号", "结果 outcome", "本方(元)", "应缴(元)", "运营机构(元)", "差异状态"],
        detail_rows=([sources.get(r.source, r.source)[:4], r.document_no or r.request_id[:14],
                      outcomes.get(r.outcome, r.outcome)[:18], _yuan(r.ours_fen), _yuan(r.expected_fen),
                      _yuan(r.operator_fen), r.case.get_state_display()[:6] if r.case_id else ""]
                     for r in discrepancies))
