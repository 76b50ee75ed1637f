"""Payroll: the employer's actions on a batch, one function each.

Money moves only through `treasury.services.transfers`; wallets are checked through
`treasury.services.wallets`. Every action takes row locks in one transaction, re-checks the state
after locking (django-fsm transitions raise on an illegal move) and writes a trace event.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models import Max, Min, Q
from django_fsm import TransitionNotAllowed, can_proceed

from treasury.access import roles
from treasury.access.errors import AccessDenied
from treasury.access.makerchecker import ensure_can_approve
from treasury.access.scoping import sees_all_organizations, user_organization
from treasury.models import Organization, Wallet
from treasury.models import NOT_PAID_STATES, Transfer, TransferState
from treasury.services.transfers import (
    NewTransfer, create_transfers, has_open_transfers, hold_claimed_transfers, hold_pending_transfers,
    release_transfers, send_claimed_transfers, submission_chunks,
)
from treasury.services.wallets import (
    WalletCheck,
    ensure_personal_wallets,
    operator_balance,
    registered_operator_codes,
    verify_wallets,
)
from treasury.trace.services import EventSpec, append_events

from treasury import bulk, spreadsheets
from treasury.money import format_yuan

from . import parsing, selectors, union
from .models import BatchState as B
from .models import PayrollBatch, PayrollLine, UnionSettings

LINE_INSERT_CHUNK = 5000
PAY_CHUNK = 5000  # lines whose transfers are made in one transaction (then paid while the next are made)
PURPOSE_SALARY = "SALARY"


class PayrollError(Exception):
    """A clerk-readable refusal; `code` is for API clients."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------------------------


def _ensure_employer_user(user, batch_or_employer, *, role_names: tuple[str, ...]) -> None:
    employer = getattr(batch_or_employer, "employer", batch_or_employer)
    if sees_all_organizations(user) and roles.has_role(user, roles.ADMIN):
        return
    if user_organization(user) != employer:
        raise AccessDenied("不能操作其他单位的批次 (this batch belongs to another organization)", code="not_found")
    if not roles.has_role(user, *role_names):
        raise AccessDenied("没有此操作的权限 (your role cannot do this)", code="role_required")


def _locked(batch_id: int) -> PayrollBatch:
    return PayrollBatch.objects.select_for_update().get(pk=batch_id)


def _trace(batch: PayrollBatch, kind: str, *, actor: str, now: datetime, amount_fen: int | None = None, **data) -> None:
    append_events(
        stream_key=batch.batch_ref,
        events=[EventSpec(kind=kind, subject_type="payroll.batch", subject_id=str(batch.pk), actor=actor,
                          amount_fen=amount_fen, source_ref=batch.batch_ref, data=data)],
        now=now,
    )


# ---------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------


class _Rejected(Exception):
    """Unwinds the import transaction: a rejected file keeps nothing but its upload and report."""


_LINE_COLUMNS = ["batch_id", "line_no", "employee_no", "name", "resident_id", "wallet_id", "components", "deductions",
                 "gross_fen", "net_fen", "warnings", "held", "hold_reason", "returned", "attempts", "wallet_type",
                 "wallet_class"]


# Key order as in parsing.PAY_COMPONENTS / DEDUCTIONS (checked below), values in fen.
_COMPONENTS_JSON = '{"basic_wage": %d, "allowances": %d, "subsidies": %d, "bonus": %d, "other_pay": %d}'
_DEDUCTIONS_JSON = ('{"social_insurance": %d, "housing_fund": %d, "income_tax": %d, "union_dues": %d, '
                    '"other_deductions": %d}')
assert list(json.loads(_COMPONENTS_JSON % (0, 0, 0, 0, 0))) == list(parsing.PAY_COMPONENTS)
assert list(json.loads(_DEDUCTIONS_JSON % (0, 0, 0, 0, 0))) == list(parsing.DEDUCTIONS)


# What `_LineBuffer.lines_sha256` digests of a line row: employee number, name, resident ID, wallet, the components'
# and deductions' JSON, gross and net.
_LINE_DIGEST_TEXT = "%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%d\x1f%d"


@dataclass
class _LineBuffer:
    """Stores valid lines as the parser hands them over, 5,000 at a time (COPY on PostgreSQL).

    Each chunk's wallets are checked with the operator (one call per 1,000) before it is stored,
    while its rows are still in memory: a line the operator refuses goes in held, with its reason,
    and its problem is kept (in line order). The batch's totals are added up on the way, so nothing
    is read back from the table."""

    batch: PayrollBatch
    write: Callable[[list[tuple]], None]  # bulk.row_stream's: COPY stays open for the whole file
    operator_codes: frozenset[str]  # registered_operator_codes(), read before the COPY opens (no query meanwhile)
    pending: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # the operator's refusals
    payable_count: int = 0
    held_count: int = 0
    total_net_fen: int = 0
    total_gross_fen: int = 0
    # Withheld union dues against the union's rules (None: no union here, or its dues are not in the payroll).
    dues: union.PayrollDuesCheck | None = None
    warning_count: int = 0  # lines stored with at least one warning
    # (line number, resident ID) of the lines withholding union dues, for `union.payroll_dues_problems`; None
    # when the employer has no union here (nothing to check).
    dues_withheld: list | None = None
    # The stored lines' digests added up: what the file says, in any order (`lines_sha256`).
    lines_sum: int = 0
    lines_seen: int = 0

    def add(self, line: parsing.PayrollLine) -> None:
        warnings = line.warnings
        dues = self.dues
        if dues is not None and line.resident_id in dues.members:
            dues_warning = dues.warning(line)
            if dues_warning:
                warnings = (*warnings, dues_warning)  # last: _drop_last_warnings relies on it
        if warnings:
            self.warning_count += 1
        if line.union_dues_fen and self.dues_withheld is not None:
            self.dues_withheld.append((line.line, line.resident_id))
        # The JSON of the components and deductions is formatted directly (fixed keys, integer values):
        # json.dumps three times a line was a third of storing a 100,000-line file.
        row = (
            self.batch.pk, line.line, line.employee_no, line.name, line.resident_id, line.wallet_id,
            _COMPONENTS_JSON % (line.basic_wage_fen, line.allowances_fen, line.subsidies_fen, line.bonus_fen,
                                line.other_pay_fen),
            _DEDUCTIONS_JSON % (line.social_insurance_fen, line.housing_fund_fen, line.income_tax_fen,
                                line.union_dues_fen, line.other_deductions_fen),
            line.gross_fen, line.net_fen,
            json.dumps(list(warnings), ensure_ascii=False) if warnings else "[]", False, "", False, 0,
            "", None,  # the wallet's type and class: _check_wallets fills them in
        )
        self.pending.append(row)
        # The line as it is paid (employee, identifiers, amounts), without its line number: the same lines in
        # another order or with other blank rows add up to the same sum.
        # (1.4 µs a line; joining str() of each field cost twice that.)
        digest = hashlib.blake2b((_LINE_DIGEST_TEXT % row[2:10]).encode(), digest_size=16).digest()
        self.lines_sum += int.from_bytes(digest)
        self.lines_seen += 1
        if len(self.pending) >= LINE_INSERT_CHUNK:
            self.flush()

    def lines_sha256(self, *, period: str) -> str:
        """What the file says, whatever its bytes: its pay period and every stored line (held ones too), in any order."""
        return hashlib.sha256(f"{period}\x1f{self.lines_seen}\x1f{self.lines_sum:x}".encode()).hexdigest()

    def flush(self) -> None:
        rows = self.pending
        held = _check_wallets(rows, self.problems, self.operator_codes)  # also fills in each row's wallet type and class
        for index, reason in held.items():
            rows[index] = (*rows[index][:11], True, reason[:255], *rows[index][13:])
        self.held_count += len(held)
        self.payable_count += len(rows) - len(held)
        self.total_net_fen += sum(row[9] for row in rows if not row[11])
        self.total_gross_fen += sum(row[8] for row in rows if not row[11])
        self.write(rows)
        self.pending = []


def _corporate_wallet(employer: Organization) -> Wallet:
    wallet = (
        Wallet.objects.filter(holder_org=employer, wallet_type=Wallet.Type.CORPORATE, status=Wallet.Status.ACTIVE)
        .order_by("pk")
        .first()
    )
    if wallet is None:
        raise PayrollError("单位没有可用的对公钱包 (the employer has no active corporate wallet)", "no_corporate_wallet")
    return wallet


_COPY_CHUNK = 1024 * 1024
UPLOAD_FOLDER = "payroll/uploads"  # under MEDIA_ROOT; a file no batch names is removed after a day (tasks.py)


def _store_upload(data, filename: str) -> tuple[str, str]:
    """Store an upload under MEDIA_ROOT, named by its content: (sha256, path under MEDIA_ROOT).

    `data` is bytes or a binary file object, copied a chunk at a time while it is hashed: a file of a million
    lines is never held in memory whole. Refused past the parser's size limit while copying.
    """
    uploads = Path(settings.MEDIA_ROOT) / UPLOAD_FOLDER
    uploads.mkdir(parents=True, exist_ok=True)
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    digest, size = hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile(dir=uploads, prefix=".upload-", delete=False) as spool:
        try:
            while chunk := stream.read(_COPY_CHUNK):
                size += len(chunk)
                if size > parsing.DEFAULT_MAX_BYTES:
                    raise spreadsheets.refuse_oversized(parsing.DEFAULT_MAX_BYTES)  # the parser's own refusal
                digest.update(chunk)
                spool.write(chunk)
        except BaseException:
            Path(spool.name).unlink(missing_ok=True)
            raise
    sha256 = digest.hexdigest()
    relative = f"{UPLOAD_FOLDER}/{sha256}{Path(filename).suffix.lower()[:6]}"
    os.replace(spool.name, Path(settings.MEDIA_ROOT) / relative)  # the same content: the same file
    return sha256, relative


def _problem(line: int, column: str, code: str, message: str, *, of_file: bool = False) -> dict:
    """A problem as a batch keeps it; `of_file` marks the file's own (its header block, columns, control totals,
    employer), which holding lines cannot cure."""
    problem = {"line": line, "column": column, "code": code, "message": message}
    if of_file:
        problem["file"] = True
    return problem


def problem_line_count(batch: PayrollBatch) -> tuple[int, bool]:
    """(data lines with at least one problem, whether that is exact): the batch keeps a bounded list of problems,
    so past its end the count is a lower bound."""
    lines = {p["line"] for p in batch.problems if not p.get("file")}
    return len(lines), len(batch.problems) >= batch.problem_count


def import_payroll_file(*, employer: Organization, user, filename: str, data, now: datetime,
                        hold_invalid_lines: bool = False) -> PayrollBatch:
    """Check a payroll file line by line and record it as a batch.

    `data`: the file's bytes, or a binary file object (an upload, an open file). It is stored a chunk at a
    time and parsed from the stored copy as it is read: memory does not grow with the file.

    - Every problem of every line is collected; the operator checks every wallet and holder name
      in bulk (one call per 1,000 lines); a net beyond the payee wallet class's balance cap is a problem.
    - A file with problems becomes a REJECTED batch that keeps only the upload and its problems,
      unless `hold_invalid_lines`: then the valid lines are kept (lines the operator refused are
      held) and the rest is reported. Problems of the file itself (another employer, no valid pay period,
      a missing column or header item, control totals that do not match the lines) and a file with no line
      to pay are rejected either way: holding lines cannot cure them.
    - The same file for the same employer is refused while its earlier batch is not rejected or cancelled:
      the same bytes before it is read, and the same period and lines (in any order, whatever the bytes)
      once it is, with nothing of it kept.

    Raises:
        PayrollError: duplicate_file, no_corporate_wallet; parsing.PayrollFileRefused for a file
            that is not a payroll spreadsheet at all (too large, a zip bomb, formulas, not CSV/XLSX).
        AccessDenied: the user is not an operator of this employer.
    """
    _ensure_employer_user(user, employer, role_names=(roles.EMPLOYER_OPERATOR,))
    payer_wallet = _corporate_wallet(employer)
    sha256, upload_path = _store_upload(data, filename)
    earlier = PayrollBatch.objects.filter(employer=employer, file_sha256=sha256).exclude(
        state__in=[B.REJECTED, B.CANCELLED]).first()
    if earlier:
        raise PayrollError(f"该文件已上传为批次 {earlier.pk} (this file was already uploaded as batch {earlier.pk})",
                           "duplicate_file")
    common = dict(employer=employer, payer_wallet=payer_wallet, filename=filename[:255], file_sha256=sha256,
                  upload_path=upload_path, prepared_by=user, created_at=now)
    batch = None
    try:
        with transaction.atomic():
            batch = PayrollBatch.objects.create(period="", file_format="", **common)
            # One COPY for the whole file: PostgreSQL stores the lines while the next ones are parsed.
            union_settings = UnionSettings.objects.filter(employer=employer).first()  # before the COPY opens
            dues_check = union.PayrollDuesCheck.for_union(union_settings)
            operator_codes = registered_operator_codes()
            with bulk.row_stream(table=PayrollLine._meta.db_table, columns=_LINE_COLUMNS) as write:
                buffer = _LineBuffer(batch=batch, write=write, operator_codes=operator_codes, dues=dues_check,
                                     dues_withheld=None if union_settings is None else [])
                with (Path(settings.MEDIA_ROOT) / upload_path).open("rb") as stored:  # read as it is parsed
                    parsed = parsing.parse_payroll_file(data=stored, filename=filename, line_sink=buffer.add)
                buffer.flush()
            if dues_check is not None:
                # Members whose month is paid already owe nothing in this file: their dues warnings go.
                paid_already = dues_check.lines_paid_already(period=parsed.header.period or "")
                buffer.warning_count -= _drop_last_warnings(batch, paid_already)
            # Rows up to the column header row are the header block and the column titles: the file's own.
            problems = [_problem(p.line, p.column, p.code, p.message, of_file=p.line <= (parsed.header_row or 0))
                        for p in parsed.problems]
            if parsed.header.employer_uscc and parsed.header.employer_uscc != employer.uscc:
                problems.insert(0, _problem(0, "单位统一社会信用代码", "employer_mismatch",
                                            "文件中的单位与当前单位不一致 (the file names another employer)", of_file=True))
            problems += buffer.problems
            # Union dues the union could not take (no member, already paid, collected by call): held like the
            # lines the operator refused, so no yuan withheld for the union stays with the employer.
            dues_refused = union.payroll_dues_problems(settings=union_settings, withheld=buffer.dues_withheld,
                                                       period=parsed.header.period or "", batch_id=batch.pk)
            problems += [_problem(line_no, "工会会费", code, message) for line_no, code, message in dues_refused]
            if dues_refused and hold_invalid_lines:
                by_reason = defaultdict(list)  # one update a reason (not member, already paid...), each line its own
                for line_no, _, message in dues_refused:
                    by_reason[message[:255]].append(line_no)
                for reason, line_nos in by_reason.items():
                    batch.lines.filter(line_no__in=line_nos).update(held=True, hold_reason=reason)
                _update_totals(batch)
                buffer.payable_count, buffer.held_count = batch.payable_count, batch.held_count
                buffer.total_net_fen, buffer.total_gross_fen = batch.total_net_fen, batch.total_gross_fen
            if hold_invalid_lines and not buffer.payable_count and not any(p.get("file") for p in problems):
                problems.append(_problem(0, "", "no_payable_line",
                                         "文件中没有可支付的明细 (no line of the file can be paid)", of_file=True))
            batch.period = parsed.header.period or ""
            batch.file_format = parsed.file_format
            batch.line_total = parsed.line_total
            batch.problem_count = parsed.problem_count + (len(problems) - len(parsed.problems))
            # By line as the file reads (the operator's and the union's findings come after the file's own).
            batch.problems = sorted(problems, key=lambda p: p["line"])
            if batch.problem_count and (not hold_invalid_lines or any(p.get("file") for p in problems)):
                raise _Rejected()
            # The same lines in a file of other bytes (saved again, another format, other blank rows) are the same
            # file: paid twice otherwise. Refused like it, and nothing of this upload is kept.
            batch.lines_sha256 = buffer.lines_sha256(period=batch.period)
            same = PayrollBatch.objects.filter(employer=employer, lines_sha256=batch.lines_sha256).exclude(
                state__in=[B.REJECTED, B.CANCELLED]).exclude(pk=batch.pk).first()
            if same:
                raise PayrollError(f"该文件的明细与批次 {same.pk} 相同 (this file has the same lines as batch {same.pk})",
                                   "duplicate_file")
            batch.payable_count, batch.held_count = buffer.payable_count, buffer.held_count
            batch.total_net_fen, batch.total_gross_fen = buffer.total_net_fen, buffer.total_gross_fen
            batch.warning_count = buffer.warning_count
            batch.validate()
            batch.save()
            _trace(batch, "payroll.batch.validated", actor=user.username, now=now, amount_fen=batch.total_net_fen,
                   lines=batch.payable_count, held=batch.held_count, problems=batch.problem_count,
                   warnings=batch.warning_count)
            return batch
    except _Rejected:
        pass
    except IntegrityError:
        # Two uploads of the same file at once: both passed the checks above, and the one-live-run constraints
        # (payroll_same_file_once, payroll_same_lines_once) refused the later one, which waited for the first.
        same = Q(file_sha256=sha256)
        if batch is not None and batch.lines_sha256:
            same |= Q(lines_sha256=batch.lines_sha256)
        earlier = PayrollBatch.objects.filter(same, employer=employer).exclude(state__in=[B.REJECTED, B.CANCELLED]).first()
        if earlier is None:
            raise
        raise PayrollError(f"该文件已上传为批次 {earlier.pk} (this file was already uploaded as batch {earlier.pk})",
                           "duplicate_file") from None
    with transaction.atomic():
        rejected = PayrollBatch.objects.create(
            period=batch.period, file_format=batch.file_format, line_total=batch.line_total,
            problem_count=batch.problem_count, problems=batch.problems, **common,
        )
        rejected.reject()
        rejected.save()
        _trace(rejected, "payroll.batch.rejected", actor=user.username, now=now, problems=rejected.problem_count)
    return rejected


def _drop_last_warnings(batch: PayrollBatch, line_nos: list[int]) -> int:
    """Remove the last warning of these stored lines (the one `_LineBuffer.add` appended), 1,000 lines at a time
    (a read and at most two writes); returns how many lines are left without any warning."""
    cleared = 0
    for start in range(0, len(line_nos), 1000):
        lines = list(batch.lines.filter(line_no__in=line_nos[start : start + 1000]).only("pk", "warnings"))
        only = [line.pk for line in lines if len(line.warnings) <= 1]
        cleared += batch.lines.filter(pk__in=only).update(warnings=[])
        others = [line for line in lines if len(line.warnings) > 1]
        for line in others:
            line.warnings = line.warnings[:-1]
        PayrollLine.objects.bulk_update(others, ["warnings"])
    return cleared


def _check_wallets(rows: list[tuple], problems: list[dict], operator_codes: frozenset[str]) -> dict[int, str]:
    """One operator call per 1,000 line rows (_LineBuffer's): wallet exists, is active, the holder
    name matches, and the net fits the wallet class's balance cap. Adds each refusal to `problems`
    and returns {index in rows: the refusal's message} for the lines to hold. Each row gets the
    wallet's type and class (its last two columns) as the operator reported them."""
    limits = settings.WALLET_CLASS_LIMITS
    held = {}
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        checks = verify_wallets(pairs=[(row[5], row[3]) for row in chunk], operator_codes=operator_codes)
        for index, (row, check) in enumerate(zip(chunk, checks), start=start):
            rows[index] = (*row[:-2], check.wallet_type or "", check.wallet_class)
            problem = _wallet_problem(check, row[9], limits)
            if problem:
                problems.append(_problem(row[1], *problem))
                held[index] = problem[2]
    return held


def _wallet_problem(check, net_fen: int, limits: dict) -> tuple[str, str, str] | None:
    if not check.exists:
        return "数字人民币钱包", "wallet_unknown", "运营机构查无此钱包 (the operator has no such wallet)"
    if not check.active:
        return "数字人民币钱包", "wallet_inactive", "钱包已冻结或注销 (the wallet is frozen or closed)"
    if not check.holder_name_matches:
        return "姓名", "holder_mismatch", "姓名与钱包户名不一致 (name does not match the wallet holder)"
    cap = (limits.get(check.wallet_class) or {}).get("balance_cap_fen") if check.wallet_class else None
    if cap is not None and net_fen > cap:
        return ("实发金额", "over_wallet_cap",
                f"实发金额超过{check.wallet_class}类钱包余额上限 (net exceeds the class {check.wallet_class} wallet's balance cap)")
    return None


def _update_totals(batch: PayrollBatch) -> None:
    from django.db.models import Count, Q, Sum

    totals = batch.lines.aggregate(
        n_payable=Count("pk", filter=Q(held=False)), n_held=Count("pk", filter=Q(held=True)),
        net=Sum("net_fen", filter=Q(held=False)), gross=Sum("gross_fen", filter=Q(held=False)),
    )
    batch.payable_count, batch.held_count = totals["n_payable"], totals["n_held"]
    batch.total_net_fen, batch.total_gross_fen = totals["net"] or 0, totals["gross"] or 0


def error_report(*, batch: PayrollBatch, fmt: str = "csv"):
    """The uploaded file with an error column, ready to fix and upload again: a binary file object at its start
    (in memory up to a few MB, on disk beyond), read from the stored upload row by row."""
    problems = [parsing.LineProblem(p["line"], p["column"], p["code"], p["message"]) for p in batch.problems]
    report = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    with (Path(settings.MEDIA_ROOT) / batch.upload_path).open("rb") as stored:
        parsing.write_error_report(
            problems=problems, original_rows=parsing.iter_original_rows(data=stored, filename=batch.filename), fmt=fmt,
            out=report)
    report.seek(0)
    return report


# ---------------------------------------------------------------------------------------------
# The workflow
# ---------------------------------------------------------------------------------------------


def submit_batch(*, batch_id: int, user, now: datetime) -> PayrollBatch:
    """validated -> submitted (for approval by another employer user)."""
    with transaction.atomic():
        batch = _locked(batch_id)
        _ensure_employer_user(user, batch, role_names=(roles.EMPLOYER_OPERATOR,))
        batch.submit()
        batch.submitted_at = now
        batch.save()
        _trace(batch, "payroll.batch.submitted", actor=user.username, now=now, amount_fen=batch.total_net_fen)
    return batch


def approve_batch(*, batch_id: int, user, now: datetime) -> PayrollBatch:
    """submitted -> approved, by an employer approver who did not prepare it (maker-checker)."""
    with transaction.atomic():
        batch = _locked(batch_id)
        _ensure_employer_user(user, batch, role_names=(roles.EMPLOYER_APPROVER,))
        ensure_can_approve(approver=user, prepared_by_id=batch.prepared_by_id, approver_roles=(roles.EMPLOYER_APPROVER,))
        batch.approve()
        batch.approved_by = user
        batch.approved_at = now
        batch.save()
        _trace(batch, "payroll.batch.approved", actor=user.username, now=now, amount_fen=batch.total_net_fen)
    return batch


def fund_batch(*, batch_id: int, user, now: datetime) -> PayrollBatch:
    """approved -> funded, once the employer's corporate wallet holds the batch's total beyond what the
    wallet's other runs were funded for and have not paid yet (a run funded is money set aside: two runs
    cannot both be funded with the same yuan).

    Raises:
        PayrollError: insufficient_funds, saying how much is there, set aside and needed.
        TransitionNotAllowed: the batch is not approved (checked before the operator is asked).
    """
    batch = PayrollBatch.objects.get(pk=batch_id)
    _ensure_employer_user(user, batch, role_names=(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER))
    # The state first: a batch that cannot be funded is refused as such (409), without asking the operator
    # (a 503 while it is away, or "insufficient funds" for a batch already funded, paid or cancelled).
    if not can_proceed(batch.fund):
        raise TransitionNotAllowed(f"a {batch.state} batch cannot be funded")
    owed = _owed_by_other_runs(payer_wallet_id=batch.payer_wallet_id, but=batch.pk)  # before the balance is asked
    balance = operator_balance(wallet=batch.payer_wallet)  # outside the transaction: no lock while asking
    needed = batch.total_net_fen + union.union_remittance_fen(batch=batch)
    with transaction.atomic():
        _ensure_money_left(batch, balance_fen=balance.balance_fen, owed_when_asked=owed, needed_fen=needed, needed_for=(
            "需要", "for net pay and union fees"))
        batch = _locked(batch_id)
        batch.fund()
        batch.save()
        _trace(batch, "payroll.batch.funded", actor=user.username, now=now, amount_fen=batch.total_net_fen,
               wallet_balance_fen=balance.balance_fen)
    return batch


def _ensure_money_left(batch: PayrollBatch, *, balance_fen: int, owed_when_asked: dict[int, int], needed_fen: int,
                       needed_for: tuple[str, str]) -> None:
    """In the caller's transaction (funding a run, retrying lines): the wallet's balance, less what its other
    funded runs have still to pay, covers `needed_fen`. The wallet's row is the lock that orders the runs' claims
    on its money: the second of two at once sees the first. No key update: an upload naming the wallet (its
    batch's foreign key) is not waited for.

    The balance was asked before the lock (no lock while the operator answers), so a run paying beside this
    may have paid salaries since: they were still in that balance. What each run had to pay is therefore taken
    as it stood before the balance was asked too (`owed_when_asked`, from `_owed_by_other_runs`).

    Raises:
        PayrollError: insufficient_funds, saying how much is there, set aside and needed (`needed_for`: what
            for, in Chinese and English).
    """
    Wallet.objects.select_for_update(no_key=True).filter(pk=batch.payer_wallet_id).first()
    set_aside = _set_aside_fen(payer_wallet_id=batch.payer_wallet_id, but=batch.pk, owed_when_asked=owed_when_asked)
    if balance_fen - set_aside < needed_fen:
        raise PayrollError(
            f"对公钱包余额不足：现有 {format_yuan(balance_fen)}，其中 {format_yuan(set_aside)} 已留给其他已备款"
            f"未发完的批次，{needed_for[0]} {format_yuan(needed_fen)}（实发工资及工会费） (insufficient funds in the "
            f"corporate wallet {needed_for[1]}, beyond what other funded runs still have to pay)",
            "insufficient_funds",
        )


def _owed_by_other_runs(*, payer_wallet_id: int, but: int) -> dict[int, int]:
    """{run id: fen} for the wallet's other funded or paying runs: their net pay not paid yet and their union
    money (counted whole while a run pays, though it goes out as its lines are paid: on the safe side)."""
    owed = {}
    for other in PayrollBatch.objects.filter(payer_wallet_id=payer_wallet_id, state__in=[B.FUNDED, B.PAYING]).exclude(pk=but):
        paid_fen = line_progress(batch=other).paid_fen if other.state == B.PAYING else 0
        owed[other.pk] = other.total_net_fen - paid_fen + union.union_remittance_fen(batch=other)
    return owed


def _set_aside_fen(*, payer_wallet_id: int, but: int, owed_when_asked: dict[int, int]) -> int:
    """What the wallet's other runs have still to pay, each run at the more of what it owed when the balance was
    asked (`owed_when_asked`: salaries paid since were still in that balance) and what it owes now; a run
    cancelled since owes nothing."""
    owed = _owed_by_other_runs(payer_wallet_id=payer_wallet_id, but=but)
    cancelled = set(PayrollBatch.objects.filter(pk__in=list(owed_when_asked), state=B.CANCELLED)
                    .values_list("pk", flat=True))
    for pk, fen in owed_when_asked.items():
        if pk not in cancelled:
            owed[pk] = max(owed.get(pk, 0), fen)
    return sum(owed.values())


def _create_line_transfers(batch: PayrollBatch, attempts: list[tuple], *, actor: str, now: datetime,
                           claimed: bool = False, hold: bool = False) -> list[int]:
    """One transfer per (line, attempt number) and the lines pointed at them, in the caller's transaction.
    With `claimed`, the transfers are created claimed and the caller queues `pay_chunk` for them on commit;
    with `hold` (the run is paused) they wait for the resume; otherwise the transfer core sends them.

    The idempotency key names the attempt: payroll:<batch>:<line> for the first, :<n> after it, so a
    retry is a new payment and a repeated call for the same attempt is the same payment.
    """
    lines = [line for line, _ in attempts]
    # The import verified every wallet and kept its type and class on the line: registration takes
    # those instead of asking the operator again (lines imported before that are asked).
    known_checks = {
        line.wallet_id: WalletCheck.passed(wallet_id=line.wallet_id, wallet_type=line.wallet_type,
                                           wallet_class=line.wallet_class)
        for line in lines if line.wallet_type
    }
    wallet_pks = ensure_personal_wallets(holders=[(line.wallet_id, line.name, line.resident_id) for line in lines],
                                         known_checks=known_checks)
    line_type = ContentType.objects.get_for_model(PayrollLine)
    ids = create_transfers(
        organization_id=batch.employer_id, batch_ref=batch.batch_ref, actor=actor, now=now, claimed=claimed, hold=hold,
        transfers=[
            NewTransfer(
                payer_id=batch.payer_wallet_id, payee_id=wallet_pks[line.wallet_id], amount_fen=line.net_fen,
                idempotency_key=f"payroll:{batch.pk}:{line.line_no}" + (f":{attempt}" if attempt > 1 else ""),
                purpose_code=PURPOSE_SALARY, memo=f"{batch.period} 工资", source_type_id=line_type.pk,
                source_id=line.pk, source_ref=f"{batch.batch_ref} line {line.line_no}",
            )
            for line, attempt in attempts
        ],
    )
    # The payee's wallet is the transfer's (line.transfer.payee): not kept on the line a second time.
    bulk.update_rows(
        table=PayrollLine._meta.db_table,
        columns=[("transfer_id", "bigint"), ("attempts", "integer")],
        rows=[(line.pk, transfer_id, attempt) for (line, attempt), transfer_id in zip(attempts, ids)],
        set_sql="held = %s, hold_reason = ''",
        set_params=[False],
    )
    return ids


class _PayLine(NamedTuple):
    pk: int
    line_no: int
    wallet_id: str
    name: str
    resident_id: str
    net_fen: int
    wallet_type: str
    wallet_class: int | None


def pay_batch(*, batch_id: int, user, now: datetime) -> PayrollBatch:
    """funded -> paying; the lines' transfers are made
    after commit by a task, PAY_CHUNK lines a transaction (`make_line_transfers`), each chunk paid by
    the workers as soon as it is committed. The clerk's request returns at once; the batch page shows
    the progress. Each line's idempotency key is fixed (payroll:<batch>:<line>), so a line cannot be
    paid twice however often this or the task runs."""
    with transaction.atomic():
        batch = _locked(batch_id)
        _ensure_employer_user(user, batch, role_names=(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER))
        batch.start_paying()
        batch.paying_at = now
        # The unions' dues and funds are remitted as lines are paid (union.remit_when_decided), not here.
        batch.save()
        _trace(batch, "payroll.batch.paying", actor=user.username, now=now, amount_fen=batch.total_net_fen,
               lines=batch.payable_count)
        _queue_line_transfers(batch_id, actor=user.username)
    return batch


def _queue_line_transfers(batch_id: int, *, actor: str) -> None:
    from payroll.tasks import make_line_transfers_task

    transaction.on_commit(partial(make_line_transfers_task.apply_async, kwargs={"batch_id": batch_id, "actor": actor}))


def make_line_transfers(*, batch_id: int, actor: str, now: datetime) -> int:
    """First transfers for the lines of a paying, unpaused batch that have none yet (not held, not
    returned), a range of PAY_CHUNK line numbers a transaction (the first one operator batch), each chunk
    handed to the workers on commit, so paying starts while the rest are made. Stops when the batch is
    paused (resume calls this again); when every line has its transfer, marks the batch made and finishes
    it if its transfers are all decided already. Resumable and safe to run twice at once: each chunk takes
    the batch's lock and picks only lines that have no transfer. Returns how many transfers it made."""
    numbers = PayrollLine.objects.filter(batch_id=batch_id).aggregate(first=Min("line_no"), last=Max("line_no"))
    # A chunk is a range of line numbers, not "the next PAY_CHUNK lines": bounded by the batch's index
    # whatever the planner believes. A new batch is not in the table's statistics until it is analyzed, and
    # "the next 5,000" was then planned as a read of every line left and a sort (25 ms a chunk with 50,000
    # lines left, 3 ms a range; EXPLAIN ANALYZE). The first range is one operator batch: the workers start
    # paying while the larger ones are made. The lines before a range got their transfers in earlier
    # transactions, so the tenth chunk does not step over the nine before it again.
    made, after_line_no, last_line_no = 0, (numbers["first"] or 1) - 1, numbers["last"] or 0
    span = min(settings.TRANSFER_CHUNK_SIZE, PAY_CHUNK)
    while True:
        with transaction.atomic():
            batch = _locked(batch_id)
            if batch.state != B.PAYING or batch.paused:
                return made
            lines = [
                _PayLine(*row) for row in batch.lines.filter(
                    held=False, returned=False, transfer__isnull=True,
                    line_no__gt=after_line_no, line_no__lte=after_line_no + span,
                ).order_by("line_no").values_list(
                    "pk", "line_no", "wallet_id", "name", "resident_id", "net_fen", "wallet_type", "wallet_class",
                )
            ]
            if lines:
                ids = _create_line_transfers(batch, [(line, 1) for line in lines], actor=actor, now=now, claimed=True)
                _queue_pay_chunks(batch_id, ids)
                made += len(ids)
            after_line_no, span = after_line_no + span, PAY_CHUNK
            if after_line_no < last_line_no:
                continue
            # The last range: the batch is marked made in the same transaction, unless a line still waits.
            if batch.lines.filter(held=False, returned=False, transfer__isnull=True).exists():
                return made
            batch.transfers_made_at = now
            batch.save(update_fields=["transfers_made_at"])
        # Every transfer may have been decided before the batch was marked made (the transfer core's
        # `batch_decided` then found it still making): it moves on now, not at the next sweep.
        finish_batch_if_done(batch_id=batch_id, now=now)
        return made


def _queue_pay_chunks(batch_id: int, transfer_ids: list[int]) -> None:
    from payroll.tasks import pay_chunk_task

    for chunk in submission_chunks(transfer_ids):
        transaction.on_commit(partial(pay_chunk_task.apply_async, kwargs={"batch_id": batch_id, "transfer_ids": chunk}))


def pay_chunk(*, batch_id: int, transfer_ids: list[int], now: datetime) -> None:
    """Send one chunk of the run's transfers (made claimed by `make_line_transfers`) to the operator, unless
    the run was paused meanwhile: then they are held, as pausing holds the transfers not yet sent, and
    resuming releases them. A pause that comes while the chunk is sent finds it in flight: it finishes."""
    if PayrollBatch.objects.filter(pk=batch_id, paused=True).exists():
        hold_claimed_transfers(transfer_ids=transfer_ids, actor="system", now=now)
    else:
        send_claimed_transfers(transfer_ids=transfer_ids, now=now)


@dataclass(frozen=True)
class LineProgress:
    """Where a batch's lines stand, each by its current transfer (a retried line counts once)."""

    paid: int
    paid_fen: int
    failed: int  # the current attempt failed, not yet retried or returned
    open: int  # being paid
    held: int
    returned: int

    @property
    def done(self) -> bool:
        return self.open == 0


def line_progress(*, batch: PayrollBatch) -> LineProgress:
    from django.db.models import Count, Q, Sum

    from .selectors import LINE_FAILED as failed, LINE_OPEN as still_open, LINE_PAID as settled

    totals = batch.lines.aggregate(
        n_paid=Count("pk", filter=settled), fen_paid=Sum("net_fen", filter=settled),
        n_failed=Count("pk", filter=failed), n_open=Count("pk", filter=still_open),
        n_held=Count("pk", filter=Q(held=True, returned=False)), n_returned=Count("pk", filter=Q(returned=True)),
    )
    return LineProgress(paid=totals["n_paid"], paid_fen=totals["fen_paid"] or 0, failed=totals["n_failed"],
                        open=totals["n_open"], held=totals["n_held"], returned=totals["n_returned"])


def finish_batch_if_done(*, batch_id: int, now: datetime) -> PayrollBatch:
    """paying -> paid (every line paid) or partially_paid (some failed, held or returned), once no line's
    transfer is still open. Safe to call as often as you like (the periodic task and the progress
    poll do): while a transfer of the run is open it answers from the outbox, without the batch's lock
    or an aggregate over every line, and so it does while lines still wait for their transfers."""
    batch = PayrollBatch.objects.get(pk=batch_id)
    if batch.state == B.PAYING and (batch.transfers_made_at is None or has_open_transfers(batch_ref=batch.batch_ref)):
        return batch
    with transaction.atomic():
        batch = _locked(batch_id)
        if batch.state != B.PAYING:
            return batch
        progress = line_progress(batch=batch)
        if not progress.done:
            return batch
        if progress.failed == progress.held == progress.returned == 0:
            batch.finish_paid()
        else:
            batch.finish_partially_paid()
        batch.finished_at = now
        batch.save()
        _trace(batch, f"payroll.batch.{batch.state}", actor="system", now=now, amount_fen=progress.paid_fen,
               paid=progress.paid, failed=progress.failed, held=progress.held, returned=progress.returned)
    return batch


def finish_batch_when_decided(*, batch_ref: str, now: datetime, **kwargs) -> None:
    """Receiver of the transfer core's `batch_decided`: the batch's last transfer was just decided."""
    batch_id = PayrollBatch.pk_of_batch_ref(batch_ref)
    if batch_id is not None:
        finish_batch_if_done(batch_id=batch_id, now=now)


def finish_paying_batches(*, now: datetime) -> int:
    """The periodic task: move every paying batch whose lines are all decided on; where lines may
    still wait for their transfers (the task making them died), run it again."""
    finished = 0
    for batch_id in PayrollBatch.objects.filter(state=B.PAYING).values_list("pk", flat=True):
        batch = finish_batch_if_done(batch_id=batch_id, now=now)
        if batch.state != B.PAYING:
            finished += 1
        elif batch.transfers_made_at is None and not batch.paused:
            with transaction.atomic():
                _queue_line_transfers(batch_id, actor="system")
    return finished


def _open_transfer_ids(batch: PayrollBatch) -> list[int]:
    return list(
        Transfer.objects.filter(batch_ref=batch.batch_ref, state=TransferState.PENDING).values_list("pk", flat=True)
    )


def pause_batch(*, batch_id: int, user, now: datetime) -> PayrollBatch:
    """Stop paying: transfers not yet sent are held (those in flight finish). Resume sends them."""
    with transaction.atomic():
        batch = _locked(batch_id)
        _ensure_employer_user(user, batch, role_names=(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER))
        if batch.state != B.PAYING or batch.paused:
            raise PayrollError("只能暂停发放中的批次 (only a batch that is paying can be paused)", "not_paying")
        held = hold_pending_transfers(transfer_ids=_open_transfer_ids(batch), actor=user.username, now=now)
        batch.paused = True
        batch.save()
        _trace(batch, "payroll.batch.paused", actor=user.username, now=now, held=held)
    return batch


def resume_batch(*, batch_id: int, user, now: datetime) -> PayrollBatch:
    with transaction.atomic():
        batch = _locked(batch_id)
        _ensure_employer_user(user, batch, role_names=(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER))
        if not batch.paused:
            raise PayrollError("批次未暂停 (the batch is not paused)", "not_paused")
        released = release_transfers(transfer_ids=_open_transfer_ids(batch), actor=user.username, now=now)
        batch.paused = False
        batch.save()
        _queue_line_transfers(batch_id, actor=user.username)  # lines paused before their transfers were made
        _trace(batch, "payroll.batch.resumed", actor=user.username, now=now, released=released)
    return batch


def _lines_to_act_on(batch: PayrollBatch, line_ids: list[int]) -> list[PayrollLine]:
    """Held lines, and lines whose payment failed; others are refused by name."""
    lines = list(batch.lines.filter(pk__in=line_ids, returned=False).select_related("transfer").order_by("line_no"))
    for line in lines:
        failed = line.transfer is not None and line.transfer.state in NOT_PAID_STATES
        if not (line.held or failed):
            raise PayrollError(f"第{line.line_no}行既未暂缓也未失败 (line {line.line_no} is neither held nor failed)",
                               "line_not_retryable")
    if len(lines) != len(set(line_ids)):
        raise PayrollError("有明细不属于此批次或已退回 (some lines are not in this batch or were returned)", "unknown_lines")
    return lines


def _ensure_union_takes_dues(batch: PayrollBatch, lines: list[PayrollLine]) -> None:
    """Refuse the first line whose withheld union dues the union could not take now: `remit_for_payroll` would
    remit nothing for it, so paying it would leave those dues with the employer."""
    withheld = [(line.line_no, line.resident_id) for line in lines if line.deductions.get("union_dues", 0)]
    if not withheld:
        return
    settings = UnionSettings.objects.filter(employer=batch.employer_id).first()
    problems = union.payroll_dues_problems(settings=settings, withheld=withheld, period=batch.period, batch_id=batch.pk)
    if problems:
        line_no, code, message = problems[0]
        raise PayrollError(f"第{line_no}行: {message}", code)


def retry_lines(*, batch_id: int, line_ids: list[int], user, now: datetime) -> PayrollBatch:
    """Pay held or failed lines again: each gets a new transfer under a new key (payroll:<batch>:<line>:<attempt>),
    so a retry is a new payment attempt, never a resend of the failed one. Held lines are checked with the
    operator again first. While the run is paused the new transfers are held, and sent when it is resumed.

    A line held since the upload was not in the total the approver approved: paying it is an approval of its
    own, so only an approver who did not prepare the batch may (maker-checker). Either way the corporate
    wallet must hold what the retried lines pay and the union money they bring, asked of the operator as
    funding does, beyond what the wallet's other funded runs have still to pay.

    A line withholding union dues is checked as the upload checked it (`union.payroll_dues_problems`, with
    the members and dues of this moment): paid while the union cannot take its dues, they would stay with the employer.

    Raises:
        PayrollError: a line is neither held nor failed, the union cannot take its dues (dues_not_member,
            dues_already_paid, dues_by_call), its wallet still fails the operator's check, or insufficient_funds.
        MakerCheckerViolation, AccessDenied: a line never approved, retried by its preparer or a non-approver.
    """
    batch = PayrollBatch.objects.get(pk=batch_id)
    _ensure_employer_user(user, batch, role_names=(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER))
    if batch.state not in (B.PAYING, B.PARTIALLY_PAID, B.PAID):  # checked again under the lock below
        # Before asking the operator: a batch not paid yet is refused as such, not with 503 or insufficient_funds.
        raise PayrollError("只能在发放中或发放后重试 (retry only while paying or after paying)", "not_paying")
    lines = _lines_to_act_on(batch, line_ids)
    if any(line.held and line.attempts == 0 for line in lines):
        ensure_can_approve(approver=user, prepared_by_id=batch.prepared_by_id, approver_roles=(roles.EMPLOYER_APPROVER,))
    # The retried salaries and the union money they bring (their members' dues, the funds on their gross).
    needed = sum(line.net_fen for line in lines) + union.union_remittance_fen(batch=batch, line_ids=line_ids)
    owed = _owed_by_other_runs(payer_wallet_id=batch.payer_wallet_id, but=batch.pk)  # before the balance is asked
    balance = operator_balance(wallet=batch.payer_wallet)  # outside the transaction: no lock while asking
    with transaction.atomic():
        _ensure_money_left(batch, balance_fen=balance.balance_fen, owed_when_asked=owed, needed_fen=needed,
                           needed_for=(
            "重试需要", "for the lines to retry and their union fees"))
        batch = _locked(batch_id)
        _ensure_employer_user(user, batch, role_names=(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER))
        lines = _lines_to_act_on(batch, line_ids)
        _ensure_union_takes_dues(batch, lines)
        checks = verify_wallets(pairs=[(line.wallet_id, line.name) for line in lines])
        for line, check in zip(lines, checks):
            problem = _wallet_problem(check, line.net_fen, settings.WALLET_CLASS_LIMITS)
            if problem:
                raise PayrollError(f"第{line.line_no}行: {problem[2]}", problem[1])
        if batch.state in (B.PARTIALLY_PAID, B.PAID):  # paid: a salary came back since (_lines_to_act_on)
            batch.retry()
        elif batch.state != B.PAYING:
            raise PayrollError("只能在发放中或发放后重试 (retry only while paying or after paying)", "not_paying")
        # A paused run's retried lines wait for the resume with the rest of what was not sent (`resume_batch`).
        _create_line_transfers(batch, [(line, line.attempts + 1) for line in lines], actor=user.username, now=now,
                               hold=batch.paused)
        batch.finished_at = None
        _update_totals(batch)
        batch.save()
        _trace(batch, "payroll.batch.retried", actor=user.username, now=now, lines=[l.line_no for l in lines])
    return batch


def return_lines(*, batch_id: int, line_ids: list[int], user, reason: str, now: datetime) -> PayrollBatch:
    """Give up on held or failed lines (退回) of a paying or partially paid batch, or of a paid one whose salary came
    back (reversed, returned by the operator: the run becomes partially paid): they will not be paid by this service;
    the reason is kept. Before paying, the lines are still those the approver is to approve.

    Raises:
        PayrollError: reason_required, not_paying, line_not_retryable, unknown_lines.
    """
    if not reason.strip():
        raise PayrollError("请填写退回原因 (a reason is required)", "reason_required")
    with transaction.atomic():
        batch = _locked(batch_id)
        _ensure_employer_user(user, batch, role_names=(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER))
        if batch.state not in selectors.LINE_ACTION_STATES:
            raise PayrollError("只能在发放中或发放后退回 (return lines only while paying or after paying)", "not_paying")
        lines = _lines_to_act_on(batch, line_ids)
        PayrollLine.objects.filter(pk__in=[l.pk for l in lines]).update(returned=True, hold_reason=reason.strip()[:255])
        if batch.state == B.PAID:  # a salary came back after the run was paid, and is given up: paid in part
            batch.line_given_up()
            batch.save()
        _trace(batch, "payroll.batch.lines_returned", actor=user.username, now=now,
               lines=[l.line_no for l in lines], reason=reason.strip())
    return batch


def close_batch(*, batch_id: int, user, now: datetime) -> PayrollBatch:
    """paid | partially_paid -> closed: the employer is done with this run (held and failed lines must
    have been retried or returned first, so nothing is left half-decided)."""
    with transaction.atomic():
        batch = _locked(batch_id)
        _ensure_employer_user(user, batch, role_names=(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER))
        progress = line_progress(batch=batch)
        if progress.failed or progress.held or progress.open:
            raise PayrollError("仍有失败或暂缓的明细，请先重试或退回 (retry or return the failed and held lines first)",
                               "lines_open")
        batch.close()
        batch.save()
        _trace(batch, "payroll.batch.closed", actor=user.username, now=now, paid=progress.paid,
               returned=progress.returned)
    return batch


def cancel_batch(*, batch_id: int, user, reason: str, now: datetime) -> PayrollBatch:
    """Cancel before paying, with a reason."""
    if not reason.strip():
        raise PayrollError("请填写取消原因 (a reason is required)", "reason_required")
    with transaction.atomic():
        batch = _locked(batch_id)
        _ensure_employer_user(user, batch, role_names=(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER))
        batch.cancel()
        batch.cancel_reason = reason.strip()[:255]
        batch.finished_at = now
        batch.save()
        _trace(batch, "payroll.batch.cancelled", actor=user.username, now=now, reason=batch.cancel_reason)
    return batch
