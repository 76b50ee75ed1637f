"""Daily three-way reconciliation (对账): the tax system's check detail (3111), our deductions and
treasury entries, and the operator's statement of the treasury wallet.

The matching is one set-based INSERT ... SELECT over the three sources stacked and grouped on the serial
key (a full outer join that SQLite and PostgreSQL both run), never a loop over records in Python. Only
serials that are not matched get a result row; every serial is counted per tax authority and outcome
(`ReconciliationTotal`) in the same statement on PostgreSQL. Check records and statement lines are loaded with COPY on
PostgreSQL (treasury.bulk.insert_rows).
"""
from __future__ import annotations

import datetime as dt
import hashlib

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from adapters.tips.interface import Acknowledgement, CheckDetail, CheckResult, ResultCode
from tax.services import ensure_tax_staff, local_date, send_to_tips
from treasury import bulk
from treasury.models import LedgerAccount, Transfer, TransferState
from treasury.services.transfers import OperatorRejected, OperatorUnavailable

from .models import (
    DISCREPANCY_OUTCOMES,
    CaseCorrection,
    CaseState,
    CheckPackage,
    CheckRecord,
    DiscrepancyCase,
    Outcome,
    ReconciliationResult,
    ReconciliationRun,
    ReconciliationTotal,
    RunState,
    RunStep,
    StatementLine,
    STALLED_AFTER,
)

RESULT_TABLE = ReconciliationResult._meta.db_table
TOTAL_TABLE = ReconciliationTotal._meta.db_table
CASE_TABLE = DiscrepancyCase._meta.db_table
RECORD_TABLE = CheckRecord._meta.db_table
LINE_TABLE = StatementLine._meta.db_table
PACKAGE_TABLE = CheckPackage._meta.db_table
CORRECTION_TABLE = CaseCorrection._meta.db_table
TRANSFER_TABLE = Transfer._meta.db_table


class ReconciliationError(Exception):
    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# Inbound check detail (3111)
# ---------------------------------------------------------------------------------------------


def receive_check_detail(*, message: CheckDetail, now: dt.datetime) -> Acknowledgement:
    """Store one 3111 package and its lines (COPY). A package already received is acknowledged with
    94051 and not stored again. When the day's last package arrives, the day is reconciled after commit."""
    def ack(result: str, note: str = "") -> Acknowledgement:
        return Acknowledgement(ori_msg_id=message.head.msg_id, result=result, add_word=note)

    if len(message.lines) != message.all_num or sum(line.amount_fen for line in message.lines) != message.all_amount_fen:
        return ack(ResultCode.PARSE_ERROR, "笔数或金额与明细不符 (AllNum/AllAmt do not match the lines)")
    if message.cur_pack_no > message.child_pack_num:
        # Counted as one of the check's packages it would make the day look complete with one still missing.
        return ack(ResultCode.PARSE_ERROR, f"包序号{message.cur_pack_no}大于总包数{message.child_pack_num} "
                                           f"(CurPackNo is beyond ChildPackNum)")
    with transaction.atomic():
        counted = (CheckPackage.objects.filter(check_date=message.chk_date, payee_bank_no=message.payee_bank_no,
                                               chk_acct_ord=message.chk_acct_ord)
                   .exclude(child_pack_num=message.child_pack_num).values_list("child_pack_num", flat=True).first())
        if counted is not None:
            return ack(ResultCode.PARSE_ERROR, f"总包数{message.child_pack_num}与本次对账已收包的{counted}不符 "
                                               f"(ChildPackNum differs from the check's packages received)")
        package, created = CheckPackage.objects.get_or_create(
            check_date=message.chk_date, payee_bank_no=message.payee_bank_no, chk_acct_ord=message.chk_acct_ord,
            cur_pack_no=message.cur_pack_no,
            defaults=dict(pay_bk_code=message.pay_bk_code, chk_acct_type=message.chk_acct_type, all_num=message.all_num,
                          all_amount_fen=message.all_amount_fen, child_pack_num=message.child_pack_num,
                          msg_id=message.head.msg_id, received_at=now))
        if not created:
            return ack(ResultCode.DUPLICATE, "对账明细包已接收 (package already received)")
        bulk.insert_rows(table=RECORD_TABLE, columns=[
            "package_id", "check_date", "pay_op_bk_code", "pay_acct", "tax_org_code", "entrust_date", "pack_no",
            "tra_no", "amount_fen", "tax_vou_no", "tax_pay_name", "protocol_no"], rows=[
            (package.pk, message.chk_date, line.pay_op_bk_code, line.pay_acct, line.ori_tax_org_code,
             line.ori_entrust_date, line.ori_pack_no, line.ori_tra_no, line.amount_fen, line.tax_vou_no,
             line.tax_pay_name, line.protocol_no) for line in message.lines])
        if complete_packages(check_date=message.chk_date) is not None:
            from .tasks import reconcile_task

            transaction.on_commit(lambda: reconcile_task.apply_async(
                kwargs={"check_date": message.chk_date.isoformat(), "tax_org_code": ""}))
    return ack(ResultCode.SUCCESS)


INTRADAY_CHECK = "0"  # ChkAcctType: 0 a check taken during the day (日间), else the end-of-day check (日切)


def complete_packages(*, check_date: dt.date) -> list[int] | None:
    """Ids of the day's check packages: of each payee bank (treasury) that sent a check, its latest end-of-day
    check order; None until every one of those has all its ChildPackNum packages, and while a bank that sent an
    intraday check (ChkAcctType 0: what was paid up to some hour) has not sent its end-of-day check (the whole day,
    the only one a day is reconciled on, as bank front-ends do)."""
    latest, intraday = {}, set()
    for p in CheckPackage.objects.filter(check_date=check_date).order_by("payee_bank_no", "-chk_acct_ord"):
        if p.chk_acct_type == INTRADAY_CHECK:
            intraday.add(p.payee_bank_no)
        elif p.payee_bank_no not in latest or latest[p.payee_bank_no][0].chk_acct_ord == p.chk_acct_ord:
            latest.setdefault(p.payee_bank_no, []).append(p)
    if not latest or not intraday <= latest.keys():
        return None
    if any(len({p.cur_pack_no for p in packages}) < packages[0].child_pack_num for packages in latest.values()):
        return None
    return [p.pk for packages in latest.values() for p in packages]


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------


def parse_request_id(request_id: str) -> tuple[str, dt.date | None, str]:
    """The serial key of a tax transfer's idempotency key `tax:<org>:<YYYYMMDD>:<TraNo>`, else empty.

    A reversal (冲正) is booked under `<original key>:reversal`, or `<original key>:reversal:<n>` when earlier
    attempts were refused (treasury reverse_transfer): it belongs to the original serial, where its debit nets
    the original credit off."""
    parts = request_id.split(":")
    if len(parts) == 6 and parts[4] == "reversal" and parts[5].isdigit():
        parts = parts[:5]
    if len(parts) == 5 and parts[4] == "reversal":
        parts = parts[:4]
    if len(parts) != 4 or parts[0] != "tax":
        return "", None, ""
    try:
        day = dt.datetime.strptime(parts[2], "%Y%m%d").date()
    except ValueError:
        return "", None, ""
    return parts[1], day, parts[3]


def treasury_wallets():
    return [a.wallet for a in LedgerAccount.objects.filter(kind=LedgerAccount.Kind.TREASURY_SINGLE,
                                                           wallet__isnull=False).select_related("wallet")]


def run_corrections(*, check_date: dt.date) -> dict[str, tuple]:
    """The settled correcting transfers (`taxcorr:<id>`) a run of the check date counts: those of its own
    deductions and of its cases. {request id: (org, entrust date, TraNo, the day the operator booked it, the pks
    of its payer and payee wallets)}."""
    rows = (CaseCorrection.objects.filter(transfer__state=TransferState.SETTLED)
            .filter(Q(deduction__entrust_date=check_date) | Q(case__check_date=check_date))
            .values_list("pk", "deduction__tax_org_code", "deduction__entrust_date", "deduction__tra_no",
                         "transfer__settled_at", "payer_id", "payee_id"))
    return {f"taxcorr:{pk}": (org, day, tra_no, local_date(settled_at), (payer_id, payee_id))
            for pk, org, day, tra_no, settled_at, payer_id, payee_id in rows}


def fetch_statement(*, check_date: dt.date) -> list[tuple]:
    """The operator's statement lines of every treasury wallet for the day, as rows (without run id), and
    the lines of the run's settled corrections from the days they were booked on (often a later day): a
    correction's money belongs to the serial of its case. A treasury wallet's statement of another day is
    asked for only when one of the corrections was booked on it that day."""
    from treasury.services.wallets import operator_statement

    corrections = run_corrections(check_date=check_date)
    # wallet pk: the days corrections were booked on it (a correction's treasury wallet is its payer or its
    # payee; only treasury wallets are asked for statements)
    booked_days: dict[int, set[dt.date]] = {}
    for *_, day, wallet_pks in corrections.values():
        for wallet_pk in wallet_pks:
            booked_days.setdefault(wallet_pk, set()).add(day)
    rows = []
    for wallet in treasury_wallets():
        for day in sorted({check_date, *booked_days.get(wallet.pk, ())}):
            for line in operator_statement(wallet=wallet, day=day):
                if line.request_id in corrections:
                    org, entrust_date, tra_no, *_ = corrections[line.request_id]
                elif day == check_date:
                    org, entrust_date, tra_no = parse_request_id(line.request_id)
                else:
                    continue
                rows.append((wallet.wallet_id, line.operator_txn_id, line.request_id,
                             bulk.datetime_param(line.booked_at), line.direction, line.kind, line.amount_fen, org,
                             entrust_date, tra_no))
    return rows


LINE_COLUMNS = ["wallet_id", "operator_txn_id", "request_id", "booked_at", "direction", "kind", "amount_fen",
                "tax_org_code", "entrust_date", "tra_no"]


def reconcile(*, check_date: dt.date, tax_org_code: str = "", now: dt.datetime,
              statement_rows: list[tuple] | None = None) -> ReconciliationRun:
    """Reconcile a check date (one tax authority, or all when `tax_org_code` is empty).

    Idempotent: a re-run replaces the run's statement lines and results in one transaction; cases
    found again are the same cases (their state and history stay), new discrepancies open new cases.
    Settled corrections not entered yet get their treasury entries first (`book_correction_entries`).
    Waits (state waiting, nothing matched) until every check package of the day has arrived.
    The run's `step` says how far it is (committed before each step, for its page); it is empty again when the
    run ends, and `failure` says why when it ended early.

    Raises:
        OperatorUnavailable / OperatorRejected: the statement could not be fetched (nothing changed but
            the run's `failure`).
    """
    package_ids = complete_packages(check_date=check_date)
    run, _ = ReconciliationRun.objects.get_or_create(check_date=check_date, tax_org_code=tax_org_code)
    if package_ids is None:
        ReconciliationRun.objects.filter(pk=run.pk).update(
            state=RunState.WAITING, note="税务对账明细未收齐 (check detail not complete)", step=RunStep.IDLE,
            failure="")
        run.refresh_from_db()
        return run
    from .corrections import book_correction_entries

    # Not queued by a person (the beat, the day's last 3111, the command): the page names nobody as asking.
    asked_by = {} if run.step == RunStep.QUEUED else {"requested_by": "", "requested_at": None}
    try:
        _set_step(run, RunStep.FETCHING, **asked_by)
        # A correction whose transfer settled is entered before our entries are compared (when the transfer
        # core's announcement was lost and the sweep has not run yet).
        book_correction_entries(now=now)
        if statement_rows is None:
            statement_rows = fetch_statement(check_date=check_date)  # no lock or transaction held while calling out
        _set_step(run, RunStep.MATCHING)
        with transaction.atomic():
            run = ReconciliationRun.objects.select_for_update().get(pk=run.pk)
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {RESULT_TABLE} WHERE run_id = %s", [run.pk])
                cursor.execute(f"DELETE FROM {TOTAL_TABLE} WHERE run_id = %s", [run.pk])
                cursor.execute(f"DELETE FROM {LINE_TABLE} WHERE run_id = %s", [run.pk])
            bulk.insert_rows(table=LINE_TABLE, columns=["run_id", *LINE_COLUMNS],
                             rows=[(run.pk, *row) for row in statement_rows])
            match(run_id=run.pk, check_date=check_date, tax_org_code=tax_org_code, package_ids=package_ids)
            open_cases(run_id=run.pk, check_date=check_date, now=now)
            totals = outcome_totals(run_id=run.pk)
            discrepancies = sum(v["count"] for k, v in totals.items() if k in DISCREPANCY_OUTCOMES)
            ReconciliationRun.objects.filter(pk=run.pk).update(
                state=RunState.DONE, totals=totals, note="",
                matched_count=totals.get(Outcome.MATCHED, {}).get("count", 0), discrepancy_count=discrepancies,
                tax_amount_fen=sum(v["tax_fen"] for v in totals.values()),
                ours_amount_fen=sum(v["ours_fen"] for v in totals.values()),
                operator_amount_fen=sum(v["operator_fen"] for v in totals.values()),
                runs=run.runs + 1, reply_result="1" if discrepancies else "0",
                started_at=run.started_at or now, finished_at=now, step=RunStep.IDLE, failure="")
    except (OperatorUnavailable, OperatorRejected) as exc:
        _stopped(run, failure=f"运营机构对账单获取失败 (the operator's statement could not be fetched): {exc}")
        raise
    except Exception:
        _stopped(run, failure="内部错误，已记入日志 (an internal error stopped the run; it is logged)")
        raise
    run.refresh_from_db()
    return run


def _set_step(run: ReconciliationRun, step: str, **fields) -> None:
    """Committed at once outside a transaction (the run's page polls it); the wall clock, as a person reads it."""
    ReconciliationRun.objects.filter(pk=run.pk).update(step=step, step_at=timezone.now(), **fields)


def _stopped(run: ReconciliationRun, *, failure: str) -> None:
    """The run ended early: no step left shown as under way, and why. Its earlier results stay as they were."""
    if not transaction.get_connection().needs_rollback:
        ReconciliationRun.objects.filter(pk=run.pk).update(step=RunStep.IDLE, failure=failure[:255])


def request_run(*, check_date: dt.date, tax_org_code: str, user, now: dt.datetime) -> tuple[ReconciliationRun, bool]:
    """A person asks for a check date to be reconciled (the page's "run now", the API): the run is queued for a
    worker (`tax_reconciliation.reconcile`) and its page shows how far it is. Returns (run, queued): not queued
    again while the date is queued or under way (unless that work stalled, `STALLED_AFTER`).

    Raises:
        AccessDenied: not staff of the tax authority (`ensure_tax_staff`).
    """
    ensure_tax_staff(user, tax_org_code=tax_org_code)
    run, _ = ReconciliationRun.objects.get_or_create(check_date=check_date, tax_org_code=tax_org_code)
    idle = Q(step=RunStep.IDLE) | Q(step_at__isnull=True) | Q(step_at__lt=now - STALLED_AFTER)
    with transaction.atomic():
        # One conditional update: of two people asking at once, one queues the run.
        queued = ReconciliationRun.objects.filter(idle, pk=run.pk).update(
            step=RunStep.QUEUED, step_at=now, requested_by=_actor(user), requested_at=now, failure="")
        if queued:
            from .tasks import reconcile_task

            transaction.on_commit(lambda: reconcile_task.apply_async(kwargs={
                "check_date": check_date.isoformat(), "tax_org_code": tax_org_code, "requested": True}))
    run.refresh_from_db()
    return run, bool(queued)


def match(*, run_id: int, check_date: dt.date, tax_org_code: str, package_ids: list[int]) -> None:
    """The three-way match of one run: one INSERT ... SELECT (see tax/README.md, Reconciliation, for the
    outcome table). The three sources are stacked (UNION ALL) and grouped on the serial key in one hash
    aggregate: a full outer join of the three without sorting them. Run inside a transaction.

    Our side is every deduction of the check date, plus those of other entrust dates that the tax
    system's records or the operator's statement name, or whose reversal we entered on the check date. It is
    taken as it stood at the end of the check date: a deduction reversed (冲正) on a later day still held its
    debit, and its reversal is the later day's (outcome `reversed`).
    """
    org = tax_org_code
    org_r, org_l, org_d = ((" AND r.tax_org_code = %s", " AND l.tax_org_code = %s", " AND d.tax_org_code = %s")
                           if org else ("", "", ""))
    org_p = [org] if org else []
    packages_sql, packages_params = bulk.in_clause("r.package_id", package_ids)
    undecided = "('received', 'deducting', 'unknown')"
    sql = f"""
    WITH off_day AS (
        SELECT r.tax_org_code AS org, r.entrust_date AS day, r.tra_no AS tra FROM {RECORD_TABLE} r
        WHERE {packages_sql} AND r.entrust_date <> %s{org_r}
        UNION
        SELECT l.tax_org_code, l.entrust_date, l.tra_no FROM {LINE_TABLE} l
        WHERE l.run_id = %s AND l.tra_no <> '' AND l.entrust_date <> %s{org_l}
        UNION
        -- reversals (冲正) we entered on the check date of deductions of earlier days
        SELECT d.tax_org_code, d.entrust_date, d.tra_no FROM tax_treasuryentry e
          JOIN tax_taxdeduction d ON d.id = e.deduction_id
        WHERE e.reverses AND e.entry_date = %s AND d.entrust_date <> %s{org_d}
    ), d AS (
        SELECT d.id, d.tax_org_code, d.entrust_date, d.tra_no, d.kind, d.state, d.amount_fen FROM tax_taxdeduction d
        WHERE d.entrust_date = %s{org_d}
        UNION ALL
        SELECT d.id, d.tax_org_code, d.entrust_date, d.tra_no, d.kind, d.state, d.amount_fen
        FROM off_day JOIN tax_taxdeduction d
          ON d.tax_org_code = off_day.org AND d.entrust_date = off_day.day AND d.tra_no = off_day.tra
    ), cr AS (
        -- settled correcting transfers of the run (collect +, refund -), the same ones fetch_statement fetched,
        -- and their treasury entries. Their deductions are read from the table, not from d: referenced twice, d
        -- would be materialized (a million rows written and read again, 1.0-1.5 of 8.4-8.9 s at 1,000,000 a side);
        -- those of deductions outside d are left out by the join to d below.
        SELECT c.deduction_id, SUM(CASE WHEN c.kind = 'collect' THEN c.amount_fen ELSE -c.amount_fen END) AS corr,
               SUM(ce.entered) AS corr_entered
        FROM {CORRECTION_TABLE} c JOIN tax_taxdeduction d ON c.deduction_id = d.id JOIN {CASE_TABLE} dc ON dc.id = c.case_id
          JOIN {TRANSFER_TABLE} t ON t.id = c.transfer_id
          LEFT JOIN (SELECT correction_id, SUM(amount_fen) AS entered FROM tax_treasuryentry
                     WHERE correction_id IS NOT NULL GROUP BY correction_id) ce ON ce.correction_id = c.id
        WHERE t.state = 'settled' AND (d.entrust_date = %s OR dc.check_date = %s) GROUP BY c.deduction_id
    ), src AS (
        SELECT r.tax_org_code AS org, r.entrust_date AS day, r.tra_no AS tra, 1 AS t_n, r.amount_fen AS t_amt,
               CAST(NULL AS bigint) AS d_id, CAST(NULL AS varchar(16)) AS d_kind,
               CAST(NULL AS varchar(16)) AS d_state, CAST(NULL AS bigint) AS d_amt,
               CAST(NULL AS bigint) AS d_corr, CAST(NULL AS bigint) AS entered, CAST(NULL AS integer) AS rev_later,
               CAST(NULL AS bigint) AS day_entered, CAST(NULL AS integer) AS p_n, CAST(NULL AS bigint) AS p_net,
               CAST(NULL AS bigint) AS corr_entered
        FROM {RECORD_TABLE} r WHERE {packages_sql}{org_r}
        UNION ALL
        -- a deduction once per treasury entry of it (once if none): the entries are summed with the rest below,
        -- not grouped by deduction first (a second hash aggregate of a million groups). As of the check date: a
        -- reversal (冲正) entered on a later day is not in them yet (the deduction still held its debit that day);
        -- one entered on the check date is that day's. With no entry the three are NULL.
        SELECT d.tax_org_code, d.entrust_date, d.tra_no, NULL, NULL, d.id, d.kind, d.state, d.amount_fen, cr.corr,
               CASE WHEN e.reverses AND e.entry_date > %s THEN 0 ELSE e.amount_fen END,
               CASE WHEN e.deduction_id IS NULL THEN NULL WHEN e.reverses AND e.entry_date > %s THEN 1 ELSE 0 END,
               CASE WHEN e.deduction_id IS NULL THEN NULL WHEN e.entry_date = %s THEN e.amount_fen ELSE 0 END,
               NULL, NULL, cr.corr_entered
        FROM d LEFT JOIN tax_treasuryentry e ON e.deduction_id = d.id LEFT JOIN cr ON cr.deduction_id = d.id
        UNION ALL
        SELECT l.tax_org_code, l.entrust_date, l.tra_no, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               CASE WHEN l.direction = 'credit' AND l.kind = 'transfer'
                    AND SUBSTR(l.request_id, 1, 8) <> 'taxcorr:' THEN 1 ELSE 0 END,
               CASE WHEN l.direction = 'credit' THEN l.amount_fen ELSE -l.amount_fen END, NULL
        FROM {LINE_TABLE} l WHERE l.run_id = %s AND l.tra_no <> ''{org_l}
    ), k AS (
        SELECT org, day, tra, SUM(t_n) AS t_n, MIN(t_amt) AS t_amt, MAX(d_id) AS d_id, MAX(d_kind) AS d_kind,
               MAX(d_state) AS d_state, MAX(d_amt) AS d_amt, MAX(d_corr) AS d_corr, SUM(entered) AS entries,
               MAX(corr_entered) AS corr_entered, SUM(rev_later) AS rev_later, SUM(day_entered) AS day_entered,
               SUM(p_n) AS p_n, SUM(p_net) AS p_net
        FROM src GROUP BY org, day, tra
    ), h AS (
        -- held: what we hold for the serial at the end of the check date, the deduction's debit if it succeeded
        -- (or was reversed on a later day) plus its settled corrections; entered: its entries and its corrections'
        SELECT k.*, CASE WHEN d_state = 'succeeded' OR (d_state = 'reversed' AND rev_later > 0) THEN d_amt ELSE 0 END
                    + COALESCE(d_corr, 0) AS held,
               CASE WHEN entries IS NULL AND corr_entered IS NULL THEN NULL
                    ELSE COALESCE(entries, 0) + COALESCE(corr_entered, 0) END AS entered
        FROM k
    ), r AS (
        -- the reversal, booked on the check date, of a debit credited on an earlier day: the operator's debit of the
        -- day and our entries of the day (the negatives; none if the debit was never entered) agree. A column of its
        -- own, not a test of the outcome below: each reference to the outcome's CASE evaluates it again.
        SELECT h.*, (d_state = 'reversed' AND held = 0 AND d_corr IS NULL AND t_n IS NULL AND COALESCE(p_n, 0) = 0
                     AND p_net = -d_amt AND COALESCE(day_entered, -d_amt) = -d_amt) AS rev
        FROM h
    ), c AS (
        -- our amount: the debit; what we hold for a corrected serial; the money returned for a reversal
        SELECT org, day, tra, t_n, t_amt, d_id, d_state, p_n, p_net,
               CASE WHEN rev THEN -d_amt WHEN d_corr IS NULL THEN d_amt ELSE held END AS d_amt,
               CASE WHEN rev THEN day_entered ELSE entered END AS entered,
        CASE
            WHEN COALESCE(t_n, 0) > 1 THEN 'duplicate_tax'
            WHEN COALESCE(p_n, 0) > 1 THEN 'duplicate_operator'
            WHEN d_id IS NULL THEN 'missing_ours'
            WHEN d_state IN {undecided} THEN 'ours_undecided'
            WHEN rev THEN 'reversed'
            -- ... entered on the check date, and no reversal of the day at the operator
            WHEN d_state = 'reversed' AND held = 0 AND d_corr IS NULL AND COALESCE(p_n, 0) = 0
                 AND COALESCE(p_net, 0) = 0 AND COALESCE(day_entered, 0) <> 0 THEN 'missing_operator'
            WHEN held = 0 AND t_n IS NULL AND COALESCE(p_net, 0) = 0 THEN 'both_failed'
            WHEN held = 0 THEN 'ours_failed'
            -- an own payment (at the counter, no agreement) is not in the tax system's check: operator only
            WHEN t_n IS NULL AND d_kind <> 'own' THEN 'missing_tax'
            WHEN COALESCE(p_n, 0) = 0 AND d_corr IS NULL THEN 'missing_operator'
            WHEN COALESCE(t_amt, held) <> held OR COALESCE(p_net, 0) <> held OR COALESCE(entered, held) <> held
                THEN 'amount_mismatch'
            WHEN t_n IS NULL THEN 'own_matched'
            ELSE 'matched'
        END AS outcome
        FROM r
    )
    """
    insert_results = f"""
    INSERT INTO {RESULT_TABLE} (run_id, tax_org_code, entrust_date, tra_no, outcome, tax_count, tax_amount_fen,
        ours_state, ours_amount_fen, entered_amount_fen, operator_count, operator_amount_fen, deduction_id)
    SELECT %s, org, day, tra, outcome, COALESCE(t_n, 0), t_amt, COALESCE(d_state, ''), d_amt, entered,
        COALESCE(p_n, 0), p_net, d_id
    FROM c WHERE outcome <> 'matched'"""
    insert_totals = f"""
    INSERT INTO {TOTAL_TABLE} (run_id, tax_org_code, outcome, count, tax_amount_fen, ours_amount_fen,
        operator_amount_fen)
    SELECT %s, org, outcome, COUNT(*), COALESCE(SUM(t_amt), 0), COALESCE(SUM(d_amt), 0), COALESCE(SUM(p_net), 0)
    FROM c GROUP BY org, outcome"""
    params = [*packages_params, check_date, *org_p, run_id, check_date, *org_p, check_date, check_date, *org_p,  # off_day
              check_date, *org_p,  # d
              check_date, check_date,  # cr
              *packages_params, *org_p, check_date, check_date, check_date, run_id, *org_p]  # src
    with connection.cursor() as cursor:
        if bulk.is_postgresql():
            # One large hash aggregate: give it memory for this transaction, skip JIT compilation, and keep the
            # planner (which cannot estimate the stacked sources) from sorting millions of text keys instead.
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL enable_sort = off")
            # One statement: the matched serials are only counted, the others written as result rows.
            cursor.execute(f"{sql}, written AS ({insert_results} RETURNING 1)\n{insert_totals}",
                           [*params, run_id, run_id])
        else:  # no data-modifying WITH: the same match twice (small data sets)
            cursor.execute(f"{sql}\n{insert_results}", [*params, run_id])
            cursor.execute(f"{sql}\n{insert_totals}", [*params, run_id])


def open_cases(*, run_id: int, check_date: dt.date, now: dt.datetime) -> None:
    """Open a case for each discrepancy not already a case (same serial and kind), then link results to
    their cases: two set-based statements."""
    kinds_sql, kinds_params = bulk.in_clause("r.outcome", [str(o) for o in DISCREPANCY_OUTCOMES])
    with connection.cursor() as cursor:
        cursor.execute(f"""
            INSERT INTO {CASE_TABLE} (tax_org_code, entrust_date, tra_no, outcome, check_date, first_run_id, state,
                reason, investigated_by, resolved_by, history, created_at)
            SELECT r.tax_org_code, r.entrust_date, r.tra_no, r.outcome, %s, %s, %s, '', '', '', %s, %s
            FROM {RESULT_TABLE} r
            WHERE r.run_id = %s AND {kinds_sql} AND NOT EXISTS (
                SELECT 1 FROM {CASE_TABLE} c WHERE c.tax_org_code = r.tax_org_code
                AND c.entrust_date = r.entrust_date AND c.tra_no = r.tra_no AND c.outcome = r.outcome)
        """, [check_date, run_id, CaseState.OPEN, "[]", bulk.datetime_param(now), run_id, *kinds_params])
        kinds_sql, kinds_params = bulk.in_clause(f"{RESULT_TABLE}.outcome", [str(o) for o in DISCREPANCY_OUTCOMES])
        cursor.execute(f"""
            UPDATE {RESULT_TABLE} SET case_id = c.id FROM {CASE_TABLE} c
            WHERE {RESULT_TABLE}.run_id = %s AND {kinds_sql} AND c.tax_org_code = {RESULT_TABLE}.tax_org_code
              AND c.entrust_date = {RESULT_TABLE}.entrust_date AND c.tra_no = {RESULT_TABLE}.tra_no
              AND c.outcome = {RESULT_TABLE}.outcome
        """, [run_id, *kinds_params])


def outcome_totals(*, run_id: int) -> dict:
    """{outcome: {"count", "tax_fen", "ours_fen", "operator_fen"}} of a run over every serial, matched included."""
    with connection.cursor() as cursor:
        cursor.execute(f"""SELECT outcome, SUM(count), SUM(tax_amount_fen), SUM(ours_amount_fen), SUM(operator_amount_fen)
                           FROM {TOTAL_TABLE} WHERE run_id = %s GROUP BY outcome""",
                       [run_id])
        return {outcome: {"count": int(n), "tax_fen": int(t), "ours_fen": int(o), "operator_fen": int(p)}
                for outcome, n, t, o, p in cursor.fetchall()}


def check_results(*, run: ReconciliationRun) -> list[CheckResult]:
    """The 2111s of a done run, one per payee bank (treasury) whose check detail arrived for the day, each naming
    that bank's latest package: "0" when none of the run's discrepancies is that bank's, "1" and how many when
    some are (`discrepancies_by_payee_bank`). The packages are those a run of the day matches
    (`complete_packages`): none while a bank's newer check is still arriving (the day is run again once it has
    arrived)."""
    package_ids = complete_packages(check_date=run.check_date)
    if package_ids is None:
        return []
    latest = {}
    for package in CheckPackage.objects.filter(pk__in=package_ids).order_by("cur_pack_no"):
        latest[package.payee_bank_no] = package
    if len(latest) == 1:  # the usual day: every discrepancy is the one bank's
        counts = {bank: run.discrepancy_count for bank in latest}
    else:
        counts = discrepancies_by_payee_bank(run=run, banks=list(latest), package_ids=package_ids)
    return [CheckResult(ori_pay_bank_no=package.pay_bk_code, ori_chk_date=run.check_date,
                        ori_chk_acct_ord=package.chk_acct_ord, ori_payee_bank_no=bank,
                        result="1" if counts[bank] else "0",
                        add_word=f"差异 {counts[bank]} 笔 (discrepancies)" if counts[bank] else "")
            for bank, package in sorted(latest.items())]


def discrepancies_by_payee_bank(*, run: ReconciliationRun, banks: list[str],
                                package_ids: list[int]) -> dict[str, int]:
    """{payee bank: discrepancies of the run that are its}, read from the records of the packages matched
    (`package_ids`). A serial the tax system lists is the bank's whose package lists it. One it does not list
    (ours or the operator's only) is the bank's whose records show its deduction's treasury: the records of a
    bank's packages name deductions, and deductions keep their treasury code (a treasury is paid through one
    payee bank). One with no deduction, or of a treasury none of those records names, is counted for every
    bank: a difference nobody can place is reported everywhere rather than nowhere."""
    kinds_sql, kinds_params = bulk.in_clause("x.outcome", [str(o) for o in DISCREPANCY_OUTCOMES])
    packages_sql, packages_params = bulk.in_clause("r.package_id", package_ids)
    with connection.cursor() as cursor:
        cursor.execute(f"""
            WITH rp AS (
                SELECT r.tax_org_code, r.entrust_date, r.tra_no, p.payee_bank_no FROM {RECORD_TABLE} r
                JOIN {PACKAGE_TABLE} p ON p.id = r.package_id WHERE {packages_sql}
            ), tb AS (
                SELECT DISTINCT d.treasury_code, rp.payee_bank_no FROM rp JOIN tax_taxdeduction d
                  ON d.tax_org_code = rp.tax_org_code AND d.entrust_date = rp.entrust_date AND d.tra_no = rp.tra_no
            )
            SELECT x.id, COALESCE(rp.payee_bank_no, tb.payee_bank_no) FROM {RESULT_TABLE} x
            LEFT JOIN rp ON rp.tax_org_code = x.tax_org_code AND rp.entrust_date = x.entrust_date
              AND rp.tra_no = x.tra_no
            LEFT JOIN tax_taxdeduction d ON d.id = x.deduction_id AND rp.payee_bank_no IS NULL
            LEFT JOIN tb ON tb.treasury_code = d.treasury_code
            WHERE x.run_id = %s AND {kinds_sql}
        """, [*packages_params, run.pk, *kinds_params])
        banks_of: dict[int, set[str]] = {}
        for result_id, bank in cursor.fetchall():
            banks_of.setdefault(result_id, set())
            if bank is not None:
                banks_of[result_id].add(bank)
    counts = dict.fromkeys(banks, 0)
    for placed in banks_of.values():
        for bank in (placed & counts.keys()) or counts.keys():
            counts[bank] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


def _locked_case(case_id: int) -> DiscrepancyCase:
    return DiscrepancyCase.objects.select_for_update().get(pk=case_id)


def _actor(user) -> str:
    return getattr(user, "username", "") or "system"


def investigate(case, *, user, note: str, now: dt.datetime) -> None:
    """Move a locked case (any `CaseWorkflow`) into investigation, with its history; saves it.

    Raises django_fsm.TransitionNotAllowed: the case is not open."""
    case.investigate()
    case.investigated_by, case.investigating_at = _actor(user), now
    case.history = [*case.history, {"at": now.isoformat(), "by": _actor(user), "to": case.state, "note": note}]
    case.save()


def ensure_correctable(case) -> None:
    """A correction of a locked case (any `CaseWorkflow`) is approved only while the case is open or investigating:
    one resolved since the proposal was settled without that money, and moving it now would undo that.

    Raises ReconciliationError (`invalid_state`)."""
    if case.state not in (CaseState.OPEN, CaseState.INVESTIGATING):
        raise ReconciliationError("差异已解决，不能再批准更正 (the case is resolved: the correction cannot be approved)",
                                  code="invalid_state")


def resolve(case, *, user, reason: str, now: dt.datetime, correcting_transfer_id: int | None = None) -> None:
    """Resolve a locked case (any `CaseWorkflow`) with a reason, with its history; saves it.

    Raises ReconciliationError (`reason_required`), django_fsm.TransitionNotAllowed (resolved already)."""
    reason = (reason or "").strip()
    if not reason:
        raise ReconciliationError("请填写处理说明 (a reason is required)", code="reason_required")
    case.reason = reason
    case.resolve()
    case.resolved_by, case.resolved_at = _actor(user), now
    if correcting_transfer_id is not None:
        case.correcting_transfer_id = correcting_transfer_id
    case.history = [*case.history, {"at": now.isoformat(), "by": _actor(user), "to": case.state, "note": reason}]
    case.save()


def investigate_case(*, case_id: int, user, note: str = "", now: dt.datetime) -> DiscrepancyCase:
    """Take an open case into investigation.

    Raises:
        AccessDenied: not staff of the case's tax authority.
        django_fsm.TransitionNotAllowed: the case is not open.
    """
    with transaction.atomic():
        case = _locked_case(case_id)
        ensure_tax_staff(user, tax_org_code=case.tax_org_code)
        investigate(case, user=user, note=note, now=now)
    return case


def resolve_case(*, case_id: int, user, reason: str, now: dt.datetime,
                 correcting_transfer_id: int | None = None) -> DiscrepancyCase:
    """Resolve a case with a reason. Money that must move moves by a correcting transfer made through the
    treasury's transfer services (linked here); no record is edited to make sources agree.

    Raises:
        AccessDenied: not staff of the case's tax authority.
        ReconciliationError: no reason given (code "reason_required"); a correcting transfer that is not one of
            the case's approved corrections (`invalid_transfer`).
        django_fsm.TransitionNotAllowed: the case is already resolved.
    """
    if not (reason or "").strip():
        raise ReconciliationError("请填写处理说明 (a reason is required)", code="reason_required")
    with transaction.atomic():
        case = _locked_case(case_id)
        ensure_tax_staff(user, tax_org_code=case.tax_org_code)
        if correcting_transfer_id is not None and not case.corrections.filter(transfer_id=correcting_transfer_id).exists():
            raise ReconciliationError("更正转账须为本差异已批准更正的转账 (the correcting transfer must be the transfer "
                                      "of one of this case's approved corrections)", code="invalid_transfer")
        resolve(case, user=user, reason=reason, now=now, correcting_transfer_id=correcting_transfer_id)
    return case


# ---------------------------------------------------------------------------------------------
# The answer to the tax system (2111)
# ---------------------------------------------------------------------------------------------


def send_check_result(*, run_id: int, now: dt.datetime) -> ReconciliationRun:
    """Send a done all-authority run's 2111s (one per payee bank, `check_results`) to the tax system and record
    what it acknowledged. Nothing is locked while sending. A run whose acknowledged 2111s say what the run says
    now is left alone (a second delivery of the task sends nothing); a re-run whose answer changed (a correction
    made, a record arrived) sends them again: the tax system answers 94051 to a bank's unchanged one and takes
    the changed. A bank's 2111 not acknowledged is named in the run's note, and all are sent again by the next
    run or the periodic resend (`resend_check_results`); once all are acknowledged the note is cleared."""
    from tax.services import _tips  # looked up when sent: tests and settings replace the client

    run = ReconciliationRun.objects.get(pk=run_id)
    if run.state != RunState.DONE or run.tax_org_code:
        return run
    answers = check_results(run=run)
    if not answers:
        return run
    text = _replies_text(answers)
    if run.reply_sent_at is not None and run.reply_sent_text == text:
        return run
    notes, fault_codes = [], []
    for answer in answers:
        acknowledged, error, fault_code = send_to_tips(lambda: _tips().send_check_result(answer))
        if not acknowledged:
            notes.append(f"2111 {answer.ori_payee_bank_no}: {error}")
            fault_codes.append(fault_code)
    if notes:
        ReconciliationRun.objects.filter(pk=run.pk).update(
            note="; ".join(notes)[:255], reply_fault_code=next((code for code in fault_codes if code), "")[:10])
    else:
        ReconciliationRun.objects.filter(pk=run.pk).update(reply_sent_at=now, reply_sent_text=text, note="",
                                                           reply_fault_code="")
    run.refresh_from_db()
    return run


def resend_check_results(*, now: dt.datetime, within_days: int = 7) -> int:
    """The periodic resend of 2111s (beat `tax-resend-check-results`): done all-authority runs of the last
    `within_days` check dates whose 2111s were never all acknowledged, or whose last send failed (its note names
    the bank), go through `send_check_result` again; a run with nothing to answer yet sends nothing. Without it a
    day whose 2111 met an unreachable tax system at the morning's run would wait for someone to run it again. A
    run whose 2111 the tax system refused is left to a person (`reply_fault_code`). Returns how many runs were
    tried."""
    since = local_date(now) - dt.timedelta(days=within_days)
    run_ids = list(ReconciliationRun.objects.filter(
        Q(reply_sent_at__isnull=True) | Q(note__startswith="2111 "),
        state=RunState.DONE, tax_org_code="", reply_fault_code="", check_date__gte=since)
        .order_by("check_date").values_list("pk", flat=True))
    for run_id in run_ids:
        send_check_result(run_id=run_id, now=now)
    return len(run_ids)


def _replies_text(answers: list[CheckResult]) -> str:
    """What the run's 2111s said, to tell a changed answer: the check order answered, Result and AddWord of the
    one bank, or of each bank after its number; a digest of them when that would not fit the column. The order is
    part of it: a bank that sent its check again (a new order) gets its own 2111 even when the answer is the same."""
    if len(answers) == 1:
        a = answers[0]
        return f"{a.ori_chk_acct_ord} {a.result} {a.add_word}".strip()[:255]
    text = "; ".join(f"{a.ori_payee_bank_no} {a.ori_chk_acct_ord} {a.result} {a.add_word}".strip() for a in answers)
    return text if len(text) <= 255 else "sha256 " + hashlib.sha256(text.encode()).hexdigest()
