"""The sandbox budget system's own books: quotas (指标), vouchers, voucher lines, reports, in SQLite.

The budget system's side of the world, not the service's: its own SQLite file through the stdlib
`sqlite3` module, nothing of the Django ORM.

Quota arithmetic (adapters/budget/interface.py):
- a voucher accepted reserves its PayAmt on its quota (refused when available = amount - used -
  reserved is short);
- a reported `paid` line moves its amount from reserved to used;
- a reported `returned` line releases its amount (reserved down, used unchanged).
A CHECK constraint keeps used + reserved <= amount whatever happens.

Idempotency: the voucher number keys a submission and the report number a report. A key seen
before is answered with the acknowledgement first given, `duplicate=True`, and nothing changes,
refusals included (a refused voucher or report stays refused under its number; send a new one).

Concurrency: every write runs under one process-wide lock inside `BEGIN IMMEDIATE`, so a voucher
or a report is applied whole or not at all, and two deliveries of one key never both apply.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Iterable

from adapters.budget.interface import (
    VOUCHER_TYPE,
    Acknowledgement,
    LineStatus,
    QuotaInfo,
    RefusalCode,
    VoucherState,
    VoucherStatus,
)
from adapters.sandbox_common.ledger import SqliteStore, chunks
from treasury.money import format_yuan

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quotas (
    quota_id TEXT PRIMARY KEY,
    adm_div_code TEXT NOT NULL,
    st_year INTEGER NOT NULL,
    agency_code TEXT NOT NULL,
    agency_name TEXT NOT NULL,
    exp_func_code TEXT NOT NULL,
    exp_eco_code TEXT NOT NULL,
    fund_type_code TEXT NOT NULL,
    pay_type_code TEXT NOT NULL,
    amount_fen INTEGER NOT NULL CHECK (amount_fen >= 0),
    used_fen INTEGER NOT NULL DEFAULT 0 CHECK (used_fen >= 0),
    reserved_fen INTEGER NOT NULL DEFAULT 0 CHECK (reserved_fen >= 0),
    purpose TEXT NOT NULL DEFAULT '',
    CHECK (used_fen + reserved_fen <= amount_fen)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vouchers (
    voucher_no TEXT PRIMARY KEY,
    quota_id TEXT NOT NULL,
    bill_no TEXT NOT NULL,
    vt_code TEXT NOT NULL,
    agency_code TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    line_count INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    ack_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    reported_count INTEGER NOT NULL DEFAULT 0,
    paid_fen INTEGER NOT NULL DEFAULT 0,
    returned_fen INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS voucher_lines (
    voucher_no TEXT NOT NULL,
    tracking_id TEXT NOT NULL,
    payee_name TEXT NOT NULL,
    payee_acct_no TEXT NOT NULL,
    payee_bank_no TEXT NOT NULL,
    amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    purpose TEXT NOT NULL,
    PRIMARY KEY (voucher_no, tracking_id)
) WITHOUT ROWID;
-- One row per reported line: the primary key is what keeps a line from being reported twice.
CREATE TABLE IF NOT EXISTS line_results (
    voucher_no TEXT NOT NULL,
    tracking_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('paid', 'returned')),
    report_no TEXT NOT NULL,
    paid_at TEXT,
    agent_business_no TEXT NOT NULL,
    return_reason TEXT NOT NULL,
    PRIMARY KEY (voucher_no, tracking_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reports (
    report_no TEXT PRIMARY KEY,
    voucher_no TEXT NOT NULL,
    accepted INTEGER NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    ack_id TEXT NOT NULL,
    line_count INTEGER NOT NULL,
    received_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""

_QUOTA_COLUMNS = ("quota_id, adm_div_code, st_year, agency_code, agency_name, exp_func_code, exp_eco_code,"
                  " fund_type_code, pay_type_code, amount_fen, used_fen, reserved_fen, purpose")
# What must agree between a voucher and its quota: (voucher field, quota column, label).
_CLASSIFICATION = (
    ("AdmDivCode", "adm_div_code", "AdmDivCode"),
    ("StYear", "st_year", "StYear"),
    ("AgencyCode", "agency_code", "AgencyCode"),
    ("ExpFuncCode", "exp_func_code", "ExpFuncCode"),
    ("GovExpEcoCode", "exp_eco_code", "GovExpEcoCode"),
    ("FundTypeCode", "fund_type_code", "FundTypeCode"),
    ("PayTypeCode", "pay_type_code", "PayTypeCode"),
)


class SandboxBadRequest(Exception):
    """A request the budget system refuses as malformed (a SOAP fault, soap:Client): nothing applied."""

    def __init__(self, message: str, *, code: str = "BAD_REQUEST"):
        super().__init__(message)
        self.code = code


class SandboxConflict(Exception):
    """An admin request that does not fit the books (409)."""

    def __init__(self, message: str, *, code: str = "CONFLICT", http_status: int = 409):
        super().__init__(message)
        self.code = code
        self.http_status = http_status


def _quota(row) -> QuotaInfo:
    (quota_id, adm_div_code, st_year, agency_code, agency_name, exp_func_code, exp_eco_code, fund_type_code,
     pay_type_code, amount_fen, used_fen, reserved_fen, purpose) = row
    return QuotaInfo(quota_id=quota_id, adm_div_code=adm_div_code, fiscal_year=st_year, agency_code=agency_code,
                     agency_name=agency_name, exp_func_code=exp_func_code, exp_eco_code=exp_eco_code,
                     fund_type_code=fund_type_code, pay_type_code=pay_type_code, amount_fen=amount_fen,
                     used_fen=used_fen, reserved_fen=reserved_fen,
                     available_fen=amount_fen - used_fen - reserved_fen, purpose=purpose)


def _first_duplicate(values: Iterable[str]) -> str | None:
    seen = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


class BudgetLedger(SqliteStore):
    """The budget system's books. Thread-safe; one instance per storage file per process."""

    def __init__(self, *, storage_path: str):
        super().__init__(storage_path=storage_path, schema=_SCHEMA)

    # ----------------------------------------------------------------- plumbing
    @staticmethod
    def now() -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    @staticmethod
    def _next_ack_id(conn: sqlite3.Connection) -> str:
        row = conn.execute("SELECT value FROM counters WHERE name = 'ack'").fetchone()
        value = (row[0] if row else 0) + 1
        conn.execute("INSERT INTO counters (name, value) VALUES ('ack', ?)"
                     " ON CONFLICT (name) DO UPDATE SET value = excluded.value", (value,))
        return f"BA{value:012d}"

    # ----------------------------------------------------------------- quotas
    def quotas(self, *, agency_code: str = "", fiscal_year: int | None = None,
               quota_ids: tuple[str, ...] = ()) -> list[QuotaInfo]:
        """Quotas matching every given filter, by quota id."""
        where, params = [], []
        if agency_code:
            where.append("agency_code = ?")
            params.append(agency_code)
        if fiscal_year is not None:
            where.append("st_year = ?")
            params.append(fiscal_year)
        found = []
        with self._read() as conn:
            id_groups = list(chunks(list(dict.fromkeys(quota_ids)))) if quota_ids else [None]
            for group in id_groups:
                clauses, values = list(where), list(params)
                if group is not None:
                    clauses.append(f"quota_id IN ({','.join('?' * len(group))})")
                    values += group
                sql = f"SELECT {_QUOTA_COLUMNS} FROM quotas"
                if clauses:
                    sql += " WHERE " + " AND ".join(clauses)
                found += [_quota(row) for row in conn.execute(sql, values)]
        return sorted(found, key=lambda q: q.quota_id)

    def quota(self, *, quota_id: str) -> QuotaInfo:
        """One quota, or SandboxConflict(404)."""
        found = self.quotas(quota_ids=(quota_id,))
        if not found:
            raise SandboxConflict(f"no quota {quota_id}", code="NOT_FOUND", http_status=404)
        return found[0]

    def create_quotas(self, quotas: list[dict]) -> int:
        """Create quotas (admin), all or none; a quota id that exists already is a conflict.

        Each dict: quota_id, adm_div_code, fiscal_year, agency_code, agency_name, exp_func_code,
        exp_eco_code, fund_type_code, pay_type_code, amount_fen (int), purpose (optional).
        """
        rows = []
        for q in quotas:
            if not isinstance(q, dict):
                raise SandboxConflict("each quota must be an object", code="BAD_REQUEST", http_status=400)
            amount = q.get("amount_fen")
            year = q.get("fiscal_year")
            if type(amount) is not int or amount < 0 or type(year) is not int:
                raise SandboxConflict("amount_fen and fiscal_year must be integers (amount >= 0)",
                                      code="BAD_REQUEST", http_status=400)
            texts = [q.get(name) for name in ("quota_id", "adm_div_code", "agency_code", "agency_name",
                                              "exp_func_code", "exp_eco_code", "fund_type_code", "pay_type_code")]
            if not all(isinstance(t, str) and t for t in texts):
                raise SandboxConflict("quota fields must be non-empty strings", code="BAD_REQUEST", http_status=400)
            if q["pay_type_code"] not in VOUCHER_TYPE:
                raise SandboxConflict("pay_type_code must be 1 (direct) or 2 (authorised)", code="BAD_REQUEST",
                                      http_status=400)
            rows.append((q["quota_id"], q["adm_div_code"], year, q["agency_code"], q["agency_name"],
                         q["exp_func_code"], q["exp_eco_code"], q["fund_type_code"], q["pay_type_code"], amount,
                         str(q.get("purpose") or "")))
        with self._write() as conn:
            try:
                conn.executemany(
                    "INSERT INTO quotas (quota_id, adm_div_code, st_year, agency_code, agency_name, exp_func_code,"
                    " exp_eco_code, fund_type_code, pay_type_code, amount_fen, purpose)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            except sqlite3.IntegrityError:
                raise SandboxConflict("a quota with one of these ids exists already", code="QUOTA_EXISTS")
        return len(rows)

    def set_quota_amount(self, *, quota_id: str, amount_fen: int) -> QuotaInfo:
        """Admin: a budget adjustment; refused (409) below what is used and reserved."""
        with self._write() as conn:
            row = conn.execute("SELECT used_fen + reserved_fen FROM quotas WHERE quota_id = ?", (quota_id,)).fetchone()
            if row is None:
                raise SandboxConflict(f"no quota {quota_id}", code="NOT_FOUND", http_status=404)
            if amount_fen < row[0]:
                raise SandboxConflict(f"quota {quota_id} has {format_yuan(row[0])} used or reserved",
                                      code="BELOW_COMMITTED")
            conn.execute("UPDATE quotas SET amount_fen = ? WHERE quota_id = ?", (amount_fen, quota_id))
        return self.quota(quota_id=quota_id)

    # ----------------------------------------------------------------- vouchers
    @staticmethod
    def _replayed_ack(row) -> Acknowledgement:
        voucher_no, accepted, code, message, ack_id = row
        return Acknowledgement(key=voucher_no, accepted=bool(accepted), code=code, message=message,
                               duplicate=True, ack_id=ack_id)

    def submit_voucher(self, header: dict, details: list[tuple]) -> Acknowledgement:
        """Apply a voucher (header fields by XSD name with PayAmtFen; details as from
        `messages.voucher_rows`) at most once per voucher number.

        Refusals (in the order checked): QUOTA_NOT_FOUND, CLASSIFICATION_MISMATCH, AMOUNT_MISMATCH,
        QUOTA_INSUFFICIENT. Raises SandboxBadRequest (nothing applied, nothing recorded) for a
        voucher type that does not go with its payment type or a TrackingID given twice.
        """
        voucher_no = header["VoucherNo"]
        if VOUCHER_TYPE.get(header["PayTypeCode"]) != header["VtCode"]:
            raise SandboxBadRequest(f"VtCode {header['VtCode']} does not go with PayTypeCode {header['PayTypeCode']}"
                                    f" (1 -> 5201, 2 -> 8202)")
        duplicate = _first_duplicate(d[0] for d in details)
        if duplicate is not None:
            raise SandboxBadRequest(f"TrackingID {duplicate} appears more than once in voucher {voucher_no}",
                                    code="DUPLICATE_TRACKING_ID")
        amount = header["PayAmtFen"]
        detail_total = sum(d[4] for d in details)
        now = self.now().isoformat()
        with self._write() as conn:
            seen = conn.execute("SELECT voucher_no, accepted, code, message, ack_id FROM vouchers WHERE voucher_no = ?",
                                (voucher_no,)).fetchone()
            if seen:
                return self._replayed_ack(seen)
            code, message = self._voucher_refusal(conn, header, amount, detail_total)
            ack_id = self._next_ack_id(conn)
            conn.execute(
                "INSERT INTO vouchers (voucher_no, quota_id, bill_no, vt_code, agency_code, amount_fen, line_count,"
                " accepted, code, message, ack_id, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (voucher_no, header["QuotaID"], header["BillNo"], header["VtCode"], header["AgencyCode"], amount,
                 len(details), 0 if code else 1, code, message, ack_id, now))
            if not code:
                conn.execute("UPDATE quotas SET reserved_fen = reserved_fen + ? WHERE quota_id = ?",
                             (amount, header["QuotaID"]))
                conn.executemany(
                    "INSERT INTO voucher_lines (voucher_no, tracking_id, payee_name, payee_acct_no, payee_bank_no,"
                    " amount_fen, purpose) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(voucher_no, *d) for d in details])
        return Acknowledgement(key=voucher_no, accepted=not code, code=code, message=message, ack_id=ack_id)

    @staticmethod
    def _voucher_refusal(conn, header: dict, amount: int, detail_total: int) -> tuple[str, str]:
        quota_id = header["QuotaID"]
        row = conn.execute(f"SELECT {_QUOTA_COLUMNS} FROM quotas WHERE quota_id = ?", (quota_id,)).fetchone()
        if row is None:
            return RefusalCode.QUOTA_NOT_FOUND, f"指标不存在 (no quota {quota_id})"
        quota = _quota(row)
        quota_values = {"adm_div_code": quota.adm_div_code, "st_year": str(quota.fiscal_year),
                        "agency_code": quota.agency_code, "exp_func_code": quota.exp_func_code,
                        "exp_eco_code": quota.exp_eco_code, "fund_type_code": quota.fund_type_code,
                        "pay_type_code": quota.pay_type_code}
        differing = [f"{label} {header[field]} != {quota_values[column]}" for field, column, label in _CLASSIFICATION
                     if header[field] != quota_values[column]]
        if differing:
            return (RefusalCode.CLASSIFICATION_MISMATCH,
                    f"凭证要素与指标不符 (voucher differs from quota {quota_id}: {'; '.join(differing)})")
        if amount != detail_total:
            return (RefusalCode.AMOUNT_MISMATCH,
                    f"凭证金额与明细合计不符 (PayAmt {format_yuan(amount)} != details {format_yuan(detail_total)})")
        if quota.available_fen < amount:
            return (RefusalCode.QUOTA_INSUFFICIENT,
                    f"指标余额不足 (quota {quota_id} has {format_yuan(quota.available_fen)} available,"
                    f" the voucher needs {format_yuan(amount)})")
        return "", ""

    # ----------------------------------------------------------------- reports
    def report_payment(self, report_no: str, voucher_no: str, lines: list[tuple]) -> Acknowledgement:
        """Apply a report (lines as from `messages.report_rows`) at most once per report number, whole or not at all.

        Refusals: VOUCHER_NOT_FOUND (no accepted voucher of that number), LINE_UNKNOWN (a TrackingID
        not on the voucher), LINE_ALREADY_REPORTED (reported before under another report number, or
        twice in this one), AMOUNT_MISMATCH (XPayAmt differs from the line's PayAmt).
        """
        now = self.now().isoformat()
        with self._write() as conn:
            seen = conn.execute("SELECT report_no, accepted, code, message, ack_id FROM reports WHERE report_no = ?",
                                (report_no,)).fetchone()
            if seen:
                return self._replayed_ack(seen)
            voucher = conn.execute("SELECT quota_id, line_count FROM vouchers WHERE voucher_no = ? AND accepted = 1",
                                   (voucher_no,)).fetchone()
            if voucher is None:
                code, message = RefusalCode.VOUCHER_NOT_FOUND, f"凭证不存在或未受理 (no accepted voucher {voucher_no})"
            else:
                code, message = self._report_refusal(conn, voucher_no, voucher[1], lines)
            ack_id = self._next_ack_id(conn)
            conn.execute("INSERT INTO reports (report_no, voucher_no, accepted, code, message, ack_id, line_count,"
                         " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (report_no, voucher_no, 0 if code else 1, code, message, ack_id, len(lines), now))
            if not code:
                self._apply_report(conn, report_no, voucher_no, voucher[0], lines)
        return Acknowledgement(key=report_no, accepted=not code, code=code, message=message, ack_id=ack_id)

    @staticmethod
    def _report_refusal(conn, voucher_no: str, line_count: int, lines: list[tuple]) -> tuple[str, str]:
        duplicate = _first_duplicate(line[0] for line in lines)
        if duplicate is not None:
            return RefusalCode.LINE_ALREADY_REPORTED, f"明细重复 (TrackingID {duplicate} appears twice in the report)"
        wanted = [line[0] for line in lines]
        amounts = dict(BudgetLedger._lines_of(conn, "SELECT tracking_id, amount_fen FROM voucher_lines", voucher_no,
                                              wanted, whole=len(wanted) * 4 >= line_count))
        reported = dict(BudgetLedger._lines_of(conn, "SELECT tracking_id, state FROM line_results", voucher_no,
                                               wanted, whole=len(wanted) * 4 >= line_count))
        for tracking_id, _status, amount, *_ in lines:  # PayStatus is paid or returned (XSD)
            expected = amounts.get(tracking_id)
            if expected is None:
                return RefusalCode.LINE_UNKNOWN, f"明细不在凭证上 (TrackingID {tracking_id} is not on voucher {voucher_no})"
            if tracking_id in reported:
                return (RefusalCode.LINE_ALREADY_REPORTED,
                        f"明细已报告 (TrackingID {tracking_id} was reported before as {reported[tracking_id]})")
            if amount != expected:
                return (RefusalCode.AMOUNT_MISMATCH,
                        f"支付金额与明细不符 (TrackingID {tracking_id}: XPayAmt {format_yuan(amount)}"
                        f" != PayAmt {format_yuan(expected)})")
        return "", ""

    @staticmethod
    def _lines_of(conn, select: str, voucher_no: str, tracking_ids: list[str], *, whole: bool) -> Iterable[tuple]:
        """Rows of `select` (a table keyed by voucher_no, tracking_id) for these lines of a voucher: one
        scan of the voucher when asking for most of it, else lookups in chunks."""
        if whole:
            yield from conn.execute(f"{select} WHERE voucher_no = ?", (voucher_no,))
            return
        for chunk in chunks(tracking_ids):
            yield from conn.execute(f"{select} WHERE voucher_no = ? AND tracking_id IN ({','.join('?' * len(chunk))})",
                                    (voucher_no, *chunk))

    @staticmethod
    def _apply_report(conn, report_no: str, voucher_no: str, quota_id: str, lines: list[tuple]) -> None:
        paid = sum(line[2] for line in lines if line[1] == LineStatus.PAID)
        returned = sum(line[2] for line in lines if line[1] == LineStatus.RETURNED)
        conn.executemany(
            "INSERT INTO line_results (voucher_no, tracking_id, state, report_no, paid_at, agent_business_no,"
            " return_reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(voucher_no, tracking_id, status, report_no, paid_at or None, business_no, reason)
             for tracking_id, status, _amount, paid_at, business_no, reason in lines])
        conn.execute("UPDATE quotas SET reserved_fen = reserved_fen - ?, used_fen = used_fen + ? WHERE quota_id = ?",
                     (paid + returned, paid, quota_id))
        conn.execute("UPDATE vouchers SET reported_count = reported_count + ?, paid_fen = paid_fen + ?,"
                     " returned_fen = returned_fen + ? WHERE voucher_no = ?", (len(lines), paid, returned, voucher_no))

    # ----------------------------------------------------------------- status
    def voucher_status(self, *, voucher_no: str) -> VoucherStatus:
        with self._read() as conn:
            row = conn.execute(
                "SELECT accepted, code, message, amount_fen, line_count, reported_count, paid_fen, returned_fen"
                " FROM vouchers WHERE voucher_no = ?", (voucher_no,)).fetchone()
        if row is None:
            return VoucherStatus(voucher_no=voucher_no, state=VoucherState.NOT_FOUND)
        accepted, code, message, amount, line_count, reported, paid, returned = row
        if not accepted:
            return VoucherStatus(voucher_no=voucher_no, state=VoucherState.REFUSED, amount_fen=amount,
                                 line_count=line_count, message=f"{code}: {message}")
        state = VoucherState.REPORTED if reported == line_count else VoucherState.ACCEPTED
        return VoucherStatus(voucher_no=voucher_no, state=state, amount_fen=amount, line_count=line_count,
                             reported_count=reported, paid_fen=paid, returned_fen=returned)

    def voucher_lines(self, *, voucher_no: str) -> list[dict]:
        """Admin: the lines of a voucher as the budget system holds them, in TrackingID order."""
        columns = ("tracking_id", "payee_name", "payee_acct_no", "payee_bank_no", "amount_fen", "purpose", "state",
                   "report_no", "paid_at", "agent_business_no", "return_reason")
        with self._read() as conn:
            rows = conn.execute(
                "SELECT l.tracking_id, l.payee_name, l.payee_acct_no, l.payee_bank_no, l.amount_fen, l.purpose,"
                " COALESCE(r.state, 'pending'), r.report_no, r.paid_at, r.agent_business_no, r.return_reason"
                " FROM voucher_lines l LEFT JOIN line_results r"
                " ON r.voucher_no = l.voucher_no AND r.tracking_id = l.tracking_id"
                " WHERE l.voucher_no = ? ORDER BY l.tracking_id", (voucher_no,)).fetchall()
        return [dict(zip(columns, row)) for row in rows]

    def counts(self) -> dict[str, int]:
        """Admin: rows per table (tests check that a refused message applied nothing)."""
        with self._read() as conn:
            return {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                    for table in ("quotas", "vouchers", "voucher_lines", "line_results", "reports")}

    def reset(self) -> None:
        """Forget everything."""
        with self._write() as conn:
            for table in ("quotas", "vouchers", "voucher_lines", "line_results", "reports", "counters"):
                conn.execute(f"DELETE FROM {table}")
