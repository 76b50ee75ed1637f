"""Payroll: the employer's actions on a batch, one function each.

Money moves only through `treasury.services.transfers`; wallets are checked through
`treasury.services.wallets`. Every action takes row locks in one transaction, re-checks the state
after locking (django-fsm transitions raise on an illegal move) and writes a trace event.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from treasury.access import roles
from treasury.access.errors import AccessDenied
from treasury.access.makerchecker import ensure_can_approve
from treasury.access.scoping import sees_all_organizations, user_organization
from treasury.models import Organization, Wallet
from treasury.selectors import batch_progress
from treasury.services.transfers import NewTransfer, create_transfers
from treasury.services.wallets import ensure_personal_wallets, operator_balance, verify_wallets
from treasury.trace.services import EventSpec, append_events

from . import parsing
from .models import BatchState as B
from .models import PayrollBatch, PayrollLine

LINE_INSERT_CHUNK = 5000
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


@dataclass
class _LineBuffer:
    batch: PayrollBatch
    pending: list

    def add(self, line: parsing.PayrollLine) -> None:
        self.pending.append(PayrollLine(
            batch=self.batch, line_no=line.line, employee_no=line.employee_no, name=line.name,
            resident_id=line.resident_id, wallet_id=line.wallet_id, components=line.components_fen,
            deductions=line.deductions_fen, gross_fen=line.gross_fen, net_fen=line.net_fen,
            warnings=list(line.warnings),
        ))
        if len(self.pending) >= LINE_INSERT_CHUNK:
            self.flush()

    def flush(self) -> None:
        PayrollLine.objects.bulk_create(self.pending, batch_size=LINE_INSERT_CHUNK)
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


def _store_upload(data: bytes, sha256: str, filename: str) -> str:
    suffix = Path(filename).suffix.lower()[:6]
    relative = f"payroll/uploads/{sha256}{suffix}"
    path = Path(settings.MEDIA_ROOT) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return relative


def _problem(line: int, column: str, code: str, message: str) -> dict:
    return {"line": line, "column": column, "code": code, "message": message}


def import_payroll_file(*, employer: Organization, user, filename: str, data: bytes, now: datetime,
                        hold_invalid_lines: bool = False) -> PayrollBatch:
    """Check a payroll file line by line and record it as a batch.

    - Every problem of every line is collected; the operator checks every wallet and holder name
      in bulk (one call per 1,000 lines); a net beyond the payee wallet class's balance cap is a problem.
    - A file with problems becomes a REJECTED batch that keeps only the upload and its problems,
      unless `hold_invalid_lines`: then the valid lines are kept (lines the operator refused are
      held) and the rest is reported.
    - The same file for the same employer is refused while its earlier batch is not rejected or cancelled.

    Raises:
        PayrollError: duplicate_file, no_corporate_wallet; parsing.PayrollFileRefused for a file
            that is not a payroll spreadsheet at all (too large, a zip bomb, formulas, not CSV/XLSX).
        AccessDenied: the user is not an operator of this employer.
    """
    _ensure_employer_user(user, employer, role_names=(roles.EMPLOYER_OPERATOR,))
    payer_wallet = _corporate_wallet(employer)
    sha256 = hashlib.sha256(data).hexdigest()
    earlier = PayrollBatch.objects.filter(employer=employer, file_sha256=sha256).exclude(
        state__in=[B.REJECTED, B.CANCELLED]).first()
    if earlier:
        raise PayrollError(f"该文件已上传为批次 {earlier.pk} (this file was already uploaded as batch {earlier.pk})",
                           "duplicate_file")
    upload_path = _store_upload(data, sha256, filename)
    common = dict(employer=employer, payer_wallet=payer_wallet, filename=filename[:255], file_sha256=sha256,
                  upload_path=upload_path, prepared_by=user, created_at=now)
    try:
        with transaction.atomic():
            batch = PayrollBatch.objects.create(period="", file_format="", **common)
            buffer = _LineBuffer(batch=batch, pending=[])
            parsed = parsing.parse_payroll_file(data=data, filename=filename, line_sink=buffer.add)
            buffer.flush()
            problems = [_problem(p.line, p.column, p.code, p.message) for p in parsed.problems]
            if parsed.header.employer_uscc and parsed.header.employer_uscc != employer.uscc:
                problems.insert(0, _problem(0, "单位统一社会信用代码", "employer_mismatch",
                                            "文件中的单位与当前单位不一致 (the file names another employer)"))
            problems += _check_wallets(batch)
            batch.period = parsed.header.period or ""
            batch.file_format = parsed.file_format
            batch.line_total = parsed.line_total
            batch.problem_count = parsed.problem_count + (len(problems) - len(parsed.problems))
            batch.problems = problems
            if batch.problem_count and not hold_invalid_lines:
                raise _Rejected()
            _hold_refused_lines(batch, problems)
            _update_totals(batch)
            batch.validate()
            batch.save()
            _trace(batch, "payroll.batch.validated", actor=user.username, now=now, amount_fen=batch.total_net_fen,
                   lines=batch.payable_count, held=batch.held_count, problems=batch.problem_count)
            return batch
    except _Rejected:
        pass
    with transaction.atomic():
        rejected = PayrollBatch.objects.create(
            period=batch.period, file_format=batch.file_format, line_total=batch.line_total,
            problem_count=batch.problem_count, problems=batch.problems, **common,
        )
        rejected.reject()
        rejected.save()
        _trace(rejected, "payroll.batch.rejected", actor=user.username, now=now, problems=rejected.problem_count)
    return rejected


def _check_wallets(batch: PayrollBatch) -> list[dict]:
    """One operator call per 1,000 lines: wallet exists, is active, the holder name matches, and the
    net fits the wallet class's balance cap. Reads the lines in chunks: memory stays flat."""
    problems = []
    limits = settings.WALLET_CLASS_LIMITS
    rows = batch.lines.order_by("line_no").values_list("line_no", "wallet_id", "name", "net_fen")
    chunk = []
    for row in [*rows.iterator(chunk_size=5000), None]:
        if row is not None:
            chunk.append(row)
        if chunk and (row is None or len(chunk) == 1000):
            checks = verify_wallets(pairs=[(wallet_id, name) for _, wallet_id, name, _ in chunk])
            for (line_no, _, _, net_fen), check in zip(chunk, checks):
                problem = _wallet_problem(check, net_fen, limits)
                if problem:
                    problems.append(_problem(line_no, *problem))
            chunk = []
    return problems


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


def _hold_refused_lines(batch: PayrollBatch, problems: list[dict]) -> None:
    refused = {p["line"]: p["message"] for p in problems if p["code"] in
               ("wallet_unknown", "wallet_inactive", "holder_mismatch", "over_wallet_cap")}
    for line_no, message in refused.items():
        batch.lines.filter(line_no=line_no).update(held=True, hold_reason=message[:255])


def _update_totals(batch: PayrollBatch) -> None:
    from django.db.models import Count, Q, Sum

    totals = batch.lines.aggregate(
        n_payable=Count("pk", filter=Q(held=False)), n_held=Count("pk", filter=Q(held=True)),
        net=Sum("net_fen", filter=Q(held=False)), gross=Sum("gross_fen", filter=Q(held=False)),
    )
    batch.payable_count, batch.held_count = totals["n_payable"], totals["n_held"]
    batch.total_net_fen, batch.total_gross_fen = totals["net"] or 0, totals["gross"] or 0


def error_report(*, batch: PayrollBatch, fmt: str = "csv") -> bytes:
    """The uploaded file with an error column, ready to fix and upload again."""
    data = (Path(settings.MEDIA_ROOT) / batch.upload_path).read_bytes()
    problems = [parsing.LineProblem(p["line"], p["column"], p["code"], p["message"]) for p in batch.problems]
    return parsing.write_error_report(
        problems=problems, original_rows=parsing.iter_original_rows(data=data, filename=batch.filename), fmt=fmt
    )


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
    """approved -> funded, once the employer's corporate wallet holds the batch's total.

    Raises:
        PayrollError: insufficient_funds, saying how much is there and how much is needed.
    """
    batch = PayrollBatch.objects.get(pk=batch_id)
    _ensure_employer_user(user, batch, role_names=(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER))
    balance = operator_balance(wallet=batch.payer_wallet)  # outside the transaction: no lock while asking
    from treasury.money import format_yuan

    if balance.balance_fen < batch.total_net_fen:
        raise PayrollError(
            f"对公钱包余额不足：现有 {format_yuan(balance.balance_fen)}，需要 {format_yuan(batch.total_net_fen)} "
            f"(insufficient funds in the corporate wallet)",
            "insufficient_funds",
        )
    with transaction.atomic():
        batch = _locked(batch_id)
        batch.fund()
        batch.save()
        _trace(batch, "payroll.batch.funded", actor=user.username, now=now, amount_fen=batch.total_net_fen,
               wallet_balance_fen=balance.balance_fen)
    return batch


def pay_batch(*, batch_id: int, user, now: datetime) -> PayrollBatch:
    """funded -> paying: one transfer per line not held, created in this transaction and submitted
    in chunks after commit. Each line's idempotency key is fixed (payroll:<batch>:<line>), so paying
    cannot happen twice for a line even if this is called again."""
    with transaction.atomic():
        batch = _locked(batch_id)
        _ensure_employer_user(user, batch, role_names=(roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER))
        batch.start_paying()
        batch.paying_at = now
        lines = list(batch.lines.filter(held=False, transfer__isnull=True).order_by("line_no"))
        wallet_pks = ensure_personal_wallets(
            holders=[(line.wallet_id, line.name, line.resident_id) for line in lines]
        )
        line_type = ContentType.objects.get_for_model(PayrollLine)
        ids = create_transfers(
            organization_id=batch.employer_id,
            batch_ref=batch.batch_ref,
            transfers=[
                NewTransfer(
                    payer_id=batch.payer_wallet_id, payee_id=wallet_pks[line.wallet_id], amount_fen=line.net_fen,
                    idempotency_key=f"payroll:{batch.pk}:{line.line_no}", purpose_code=PURPOSE_SALARY,
                    memo=f"{batch.period} 工资", source_type_id=line_type.pk, source_id=line.pk,
                    source_ref=f"{batch.batch_ref} line {line.line_no}",
                )
                for line in lines
            ],
            actor=user.username,
            now=now,
        )
        for line, transfer_id in zip(lines, ids):
            line.transfer_id = transfer_id
            line.payee_wallet_id = wallet_pks[line.wallet_id]
        PayrollLine.objects.bulk_update(lines, ["transfer", "payee_wallet"], batch_size=2000)
        batch.save()
        _trace(batch, "payroll.batch.paying", actor=user.username, now=now, amount_fen=batch.total_net_fen,
               transfers=len(ids))
    return batch


def finish_batch_if_done(*, batch_id: int, now: datetime) -> PayrollBatch:
    """paying -> paid (every line settled) or partially_paid, once no transfer is still open."""
    progress = batch_progress(batch_ref=PayrollBatch.objects.get(pk=batch_id).batch_ref)
    with transaction.atomic():
        batch = _locked(batch_id)
        if batch.state != B.PAYING or not progress.done:
            return batch
        if progress.failed_count == 0:
            batch.finish_paid()
        else:
            batch.finish_partially_paid()
        batch.finished_at = now
        batch.save()
        _trace(batch, f"payroll.batch.{batch.state}", actor="system", now=now, amount_fen=progress.settled_fen,
               settled=progress.settled_count, failed=progress.failed_count)
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
