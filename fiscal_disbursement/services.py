"""Fiscal disbursement: the finance clerks' actions, one function each.

Money moves only through `treasury.services.transfers`; the budget-management system is reached only
through `adapters.budget` (`_budget()`), never while a row lock or a transaction is held. Every action
locks its request (and quota) in one transaction, re-checks the state after locking (django-fsm
transitions raise on an illegal move) and writes a trace event.

Outboxes: a voucher is sent (and re-sent under the same voucher number) while its request is
`approved`; a result report is sent (and re-sent under the same report number) while its
`ResultReport` row is pending. Both are sent after commit and by the periodic task, so a crash or a
budget-system outage delays them and never duplicates them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import Count, F, Max, Min, Q, Sum
from django.utils import timezone
from django_fsm import ConcurrentTransition

from adapters.budget.interface import (
    MAX_VOUCHER_DETAILS,
    BudgetError,
    BudgetFault,
    BudgetUnavailable,
    LineStatus,
    PaymentLineResult,
    PaymentReport,
    Voucher,
    VoucherDetail,
    VoucherState,
)

from treasury import bulk
from treasury.access import roles
from treasury.access.errors import AccessDenied
from treasury.access.makerchecker import ensure_can_approve
from treasury.access.scoping import sees_all_organizations, user_organization
from treasury.models import NOT_PAID_STATES, LedgerAccount, Organization, TransferState, Wallet
from treasury.money import format_yuan
from treasury.services.parties import register_organization
from treasury.services.transfers import Conditions, NewTransfer, create_transfers, has_open_transfers
from treasury.services.wallets import (
    WalletCheck,
    ensure_personal_wallets,
    operator_balance,
    register_wallet,
    registered_operator_codes,
    verify_wallets,
)
from treasury.trace.services import EventSpec, append_events

from . import payees
from .models import RESERVING_STATES, PaymentLine, PaymentRequest, PayType, Quota, RequestAttachment, ResultReport
from .models import RequestState as R

logger = logging.getLogger(__name__)

LINE_INSERT_CHUNK = 5000
PAY_CHUNK = 5000  # lines whose transfers are made in one transaction (then paid while the next are made)
REPORT_CHUNK = 5000  # lines per result report: a 50,000-line voucher is reported in 10 messages
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
SUBJECT = "fiscal.request"
ECO_CODE = re.compile(r"[0-9]{3}([0-9]{2})?")  # 经济分类: 类 (3 digits) or 款 (5), as budget.xsd's EcoCode takes it


class DisbursementError(Exception):
    """A clerk-readable refusal; `code` is for API clients."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def _budget():
    # Imported late so tests can point the client at a sandbox on a random port.
    from adapters.budget.client import get_budget_client

    return get_budget_client()


# ---------------------------------------------------------------------------------------------
# Access, locks, trace
# ---------------------------------------------------------------------------------------------

CLERK_ROLES = (roles.FINANCE_CLERK,)
APPROVER_ROLES = (roles.FINANCE_APPROVER,)


def _ensure_finance_user(user, request_or_org, *, role_names: tuple[str, ...]) -> None:
    """Finance users act on their own bureau's requests; administrators on any."""
    org = getattr(request_or_org, "organization", request_or_org)
    if sees_all_organizations(user) and roles.has_role(user, roles.ADMIN):
        return
    if user_organization(user) != org:
        raise AccessDenied("不能操作其他机构的支付申请 (this request belongs to another organization)", code="not_found")
    if not roles.has_role(user, *role_names):
        raise AccessDenied("没有此操作的权限 (your role cannot do this)", code="role_required")


def _ensure_preparer(user, request: PaymentRequest, message: str) -> None:
    """Maker-checker: one person makes a request (creates it, loads its payees, submits it), the one
    `approve_request` refuses. Another clerk who also approves could otherwise choose where the money goes
    on someone else's draft and approve it alone."""
    if user.pk != request.prepared_by_id:
        raise AccessDenied(message, code="not_preparer")


def _locked(request_id: int) -> PaymentRequest:
    return PaymentRequest.objects.select_for_update().get(pk=request_id)


def _locked_quota(quota_id: int) -> Quota:
    return Quota.objects.select_for_update().get(pk=quota_id)


def _trace(request: PaymentRequest, kind: str, *, actor: str, now: datetime, amount_fen: int | None = None,
           **data) -> None:
    append_events(
        stream_key=request.batch_ref,
        events=[EventSpec(kind=kind, subject_type=SUBJECT, subject_id=str(request.pk), actor=actor,
                          amount_fen=amount_fen, source_ref=request.batch_ref, data=data)],
        now=now,
    )


def _trace_quota(quota: Quota, kind: str, *, request: PaymentRequest | None, actor: str, now: datetime,
                 amount_fen: int, **data) -> None:
    """Quota movements chain in the quota's own stream and name the request, so a request's trace
    shows the quota it drew on (quota -> request -> voucher -> transfers -> wallets)."""
    append_events(
        stream_key=f"quota:{quota.quota_id}",
        events=[EventSpec(kind=kind, subject_type="fiscal.quota", subject_id=quota.quota_id, actor=actor,
                          amount_fen=amount_fen, source_ref=request.batch_ref if request else "",
                          data={"reserved_fen": quota.reserved_fen, "consumed_fen": quota.consumed_fen,
                                "available_fen": quota.available_fen, **data})],
        now=now,
    )


# ---------------------------------------------------------------------------------------------
# Quotas
# ---------------------------------------------------------------------------------------------


def sync_quotas(*, now: datetime, agency_code: str = "", fiscal_year: int | None = None) -> int:
    """Fetch quotas from the budget-management system and store them (new ones created, amounts and
    classifications updated). This service's own reservations and consumption are never overwritten:
    they follow from its requests. Returns how many quotas were received.

    Raises:
        BudgetError: the budget system could not be asked (BudgetUnavailable) or refused (BudgetFault).
    """
    infos = _budget().query_quotas(agency_code=agency_code, fiscal_year=fiscal_year)
    agencies = dict(Organization.objects.filter(org_type=Organization.Type.BUDGET_UNIT)
                    .exclude(code="").values_list("code", "pk"))
    with transaction.atomic():
        existing = {q.quota_id: q for q in Quota.objects.select_for_update().filter(
            quota_id__in=[i.quota_id for i in infos])}
        for info in infos:
            fields = dict(
                adm_div_code=info.adm_div_code, fiscal_year=info.fiscal_year, agency_id=agencies.get(info.agency_code),
                agency_code=info.agency_code, agency_name=info.agency_name, exp_func_code=info.exp_func_code,
                exp_eco_code=info.exp_eco_code, fund_type_code=info.fund_type_code, pay_type_code=info.pay_type_code,
                purpose=info.purpose[:200], amount_fen=info.amount_fen, budget_used_fen=info.used_fen,
                budget_reserved_fen=info.reserved_fen, synced_at=now,
            )
            quota = existing.get(info.quota_id)
            if quota is None:
                Quota.objects.create(quota_id=info.quota_id, **fields)
                continue
            if info.amount_fen < quota.reserved_fen + quota.consumed_fen:
                # A quota cut below what is already committed here: keep ours, say so loudly.
                logger.warning("quota %s cut to %s below reserved+consumed here", info.quota_id, info.amount_fen)
                fields.pop("amount_fen")
            for name, value in fields.items():
                setattr(quota, name, value)
            quota.save()
    return len(infos)


def _ensure_quota_covers(quota: Quota, request: PaymentRequest) -> None:
    if quota.available_fen < request.total_fen:
        raise DisbursementError(
            f"指标可用余额不足：可用 {format_yuan(quota.available_fen)}，申请 {format_yuan(request.total_fen)} "
            f"(the quota's available amount is short of the request)", "quota_insufficient")


def _reserve(quota: Quota, request: PaymentRequest, *, actor: str, now: datetime) -> None:
    _ensure_quota_covers(quota, request)
    quota.reserved_fen += request.total_fen
    quota.save(update_fields=["reserved_fen"])
    _trace_quota(quota, "fiscal.quota.reserved", request=request, actor=actor, now=now, amount_fen=request.total_fen)


def _move_on_quota(request: PaymentRequest, *, consumed_fen: int = 0, released_fen: int = 0, actor: str,
                   now: datetime) -> None:
    """Settled amounts go from reserved to consumed (a negative `consumed_fen`, paid money that came back, goes
    back to reserved); given-up amounts are released."""
    if not (consumed_fen or released_fen):
        return
    quota = _locked_quota(request.quota_id)
    quota.reserved_fen -= consumed_fen + released_fen
    quota.consumed_fen += consumed_fen
    quota.save(update_fields=["reserved_fen", "consumed_fen"])
    if consumed_fen > 0:
        _trace_quota(quota, "fiscal.quota.consumed", request=request, actor=actor, now=now, amount_fen=consumed_fen)
    elif consumed_fen < 0:  # paid money came back: reserved again until the clerk retries or returns the line
        _trace_quota(quota, "fiscal.quota.unconsumed", request=request, actor=actor, now=now, amount_fen=-consumed_fen)
    if released_fen:
        _trace_quota(quota, "fiscal.quota.released", request=request, actor=actor, now=now, amount_fen=released_fen)


def _outstanding_reservation(request: PaymentRequest) -> int:
    return request.total_fen - request.paid_fen - request.returned_fen


# ---------------------------------------------------------------------------------------------
# Preparing a request
# ---------------------------------------------------------------------------------------------


def _payer_wallet(*, pay_type: str, organization: Organization, quota: Quota) -> Wallet:
    """Direct payments leave the fiscal zero-balance account; authorised ones the budget unit's."""
    if pay_type == PayType.DIRECT:
        kind, owner, label = LedgerAccount.Kind.FISCAL_ZERO_BALANCE, organization, "财政零余额账户 (fiscal zero-balance account)"
    else:
        kind, owner, label = LedgerAccount.Kind.UNIT_ZERO_BALANCE, quota.agency, "单位零余额账户 (budget unit zero-balance account)"
    account = (LedgerAccount.objects.filter(kind=kind, organization=owner, wallet__status=Wallet.Status.ACTIVE)
               .select_related("wallet").order_by("pk").first()) if owner else None
    if account is None:
        raise DisbursementError(f"没有可用的{label}钱包 (no active wallet for the {label.split('(')[1].rstrip(')')})",
                                "no_payer_wallet")
    return account.wallet


UPLOAD_FOLDER = "fiscal/uploads"  # under MEDIA_ROOT; a payee file no request names is removed after a day


def _store_file(data: bytes, sha256: str, filename: str, folder: str) -> str:
    relative = f"fiscal/{folder}/{sha256}{Path(filename).suffix.lower()[:6]}"
    path = Path(settings.MEDIA_ROOT) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.touch()  # in use again: not a day-old file no request names (tasks.remove_unreferenced_uploads)
    else:
        path.write_bytes(data)
    return relative


def create_request(*, user, quota_id: str, pay_type: str, title: str, now: datetime, purpose_code: str = "SUBSIDY",
                   exp_eco_code: str = "", conditions: Conditions | None = None, filename: str = "",
                   data: bytes | None = None) -> PaymentRequest:
    """A new draft request against a quota, with its payee file when given (see `load_payee_file`).

    Raises:
        DisbursementError: unknown quota, payment type not allowed by the quota, no payer wallet.
        AccessDenied: the user is not a finance clerk, or belongs to no organization (`no_organization`: an
            administrator acts on any bureau's requests, but a new one is prepared for the preparer's own).
    """
    organization = user_organization(user)
    _ensure_finance_user(user, organization, role_names=CLERK_ROLES)
    if organization is None:
        raise AccessDenied("没有所属财政局，不能准备支付申请 (you belong to no finance bureau to prepare a request for)",
                           code="no_organization")
    quota = Quota.objects.filter(quota_id=quota_id).first()
    if quota is None:
        raise DisbursementError(f"指标 {quota_id} 不存在，请先同步指标 (unknown quota; synchronise quotas first)",
                                "quota_not_found")
    if pay_type not in PayType.values:
        raise DisbursementError("支付方式只能是直接支付或授权支付 (payment type must be direct or authorised)",
                                "bad_pay_type")
    if quota.pay_type_code and quota.pay_type_code != pay_type:
        raise DisbursementError(f"该指标只能用于{PayType(quota.pay_type_code).label} (this quota allows another payment type)",
                                "pay_type_not_allowed")
    if not title.strip():
        raise DisbursementError("请填写摘要 (a purpose is required)", "title_required")
    _ensure_no_control_character(title, zh="摘要", en="the purpose")
    if exp_eco_code and not ECO_CODE.fullmatch(exp_eco_code):
        # The voucher could never be sent (budget.xsd's EcoCode): approved, it would be refused for ever.
        raise DisbursementError("经济分类应为3位或5位数字，例如 30305 (an economic classification is 3 or 5 digits, e.g. 30305)",
                                "bad_eco_code")
    payer = _payer_wallet(pay_type=pay_type, organization=organization, quota=quota)
    with transaction.atomic():
        request = PaymentRequest.objects.create(
            organization=organization, quota=quota, agency=quota.agency, pay_type=pay_type, payer_wallet=payer,
            title=title.strip()[:140], purpose_code=(purpose_code or "SUBSIDY")[:16],
            exp_func_code=quota.exp_func_code, exp_eco_code=exp_eco_code or quota.exp_eco_code,
            conditions=conditions.to_json() if conditions and not conditions.is_empty() else None,
            prepared_by=user, created_at=now,
        )
        _trace(request, "fiscal.request.created", actor=user.username, now=now, quota=quota.quota_id)
    if data is not None:
        request = load_payee_file(request_id=request.pk, user=user, filename=filename, data=data, now=now)
    return request


@dataclass
class _LineBuffer:
    """Valid lines of the file on their way into the table, LINE_INSERT_CHUNK at a time: each chunk's
    wallets are checked with the operator (_check_wallets) before it is stored, so the operator's
    answer (wallet type and class) goes in with the line and paying need not ask again."""

    request: PaymentRequest
    write: Callable[[list[tuple]], None]  # bulk.row_stream's: COPY stays open for the whole file
    operator_codes: frozenset[str]  # registered_operator_codes(), read before the COPY opens (no query meanwhile)
    pending: list = field(default_factory=list)
    conditions: Conditions = field(default_factory=Conditions)
    problems: list = field(default_factory=list)  # from the operator's checks, in line order
    count: int = 0
    total_fen: int = 0

    def add(self, line: payees.PayeeLine) -> None:
        self.pending.append((self.request.pk, line.line, line.name, line.id_kind, line.id_number, line.wallet_id,
                             line.amount_fen, line.memo, json.dumps(list(line.warnings), ensure_ascii=False) if line.warnings else "[]", 0, False, "", ""))
        self.count += 1
        self.total_fen += line.amount_fen
        if len(self.pending) >= LINE_INSERT_CHUNK:
            self.flush()

    def flush(self) -> None:
        self.write(_check_wallets(self.pending, self.conditions, self.problems, self.operator_codes))
        self.pending = []


_LINE_COLUMNS = ["request_id", "line_no", "payee_name", "id_kind", "id_number", "wallet_id", "amount_fen", "memo",
                 "warnings", "attempts", "returned", "return_reason", "report_no", "wallet_type", "wallet_class"]


class _Refused(Exception):
    """Unwinds the import transaction: a file with problems leaves no line behind."""


def load_payee_file(*, request_id: int, user, filename: str, data: bytes, now: datetime) -> PaymentRequest:
    """Replace a draft's payees with the lines of a payee file (CSV/XLSX, see PAYEES.md).

    All or nothing: every problem of every line is collected (and the operator checks every wallet,
    one call per 1,000 lines); if there is any, the draft keeps no line, only the problems and the
    upload (for the error report). Otherwise the lines replace the previous ones.

    Only the preparer loads payees (`_ensure_preparer`).

    Raises:
        payees.PayeeFileRefused: not a payee spreadsheet at all (too large, zip bomb, formulas ...).
        DisbursementError: the request is not a draft.
        AccessDenied: not a clerk of the request's bureau, or not its preparer (`not_preparer`).
    """
    sha256 = hashlib.sha256(data).hexdigest()
    upload_path = _store_file(data, sha256, filename, "uploads")  # in UPLOAD_FOLDER
    try:
        with transaction.atomic():
            request = _locked(request_id)
            _ensure_finance_user(user, request, role_names=CLERK_ROLES)
            _ensure_preparer(user, request, "只有经办人可以更换收款人 (only whoever prepared the request may change its payees)")
            if request.state != R.DRAFT:
                raise DisbursementError("只有草稿可以更换收款人 (payees can be changed only in a draft)", "not_draft")
            request.lines.all().delete()
            operator_codes = registered_operator_codes()  # before the COPY opens: no query while it is open
            # One COPY for the whole file: PostgreSQL stores the lines while the next ones are parsed.
            with bulk.row_stream(table=PaymentLine._meta.db_table, columns=_LINE_COLUMNS) as write:
                buffer = _LineBuffer(request=request, write=write, operator_codes=operator_codes,
                                     conditions=Conditions.from_json(request.conditions))
                parsed = payees.parse_payee_file(data, filename=filename, line_sink=buffer.add)
                buffer.flush()
            problems = [_problem(p.line, p.column, p.code, p.message) for p in parsed.problems]
            problems += buffer.problems
            request.filename, request.file_sha256, request.upload_path = filename[:255], sha256, upload_path
            request.problems = problems[:1000]
            request.problem_count = parsed.problem_count + len(problems) - len(parsed.problems)
            if request.problem_count:
                raise _Refused()
            request.line_count, request.total_fen = buffer.count, buffer.total_fen
            if not request.line_count:
                request.problems = [_problem(0, "", "no_lines", "文件中没有收款人 (the file has no payee lines)")]
                request.problem_count = 1
                raise _Refused()
            if request.line_count > MAX_VOUCHER_DETAILS:
                request.problems = [_problem(0, "", "too_many_lines",
                                             f"一张支付凭证最多{MAX_VOUCHER_DETAILS}笔，文件有{request.line_count}笔，请分成"
                                             f"几个申请 (a payment voucher carries at most {MAX_VOUCHER_DETAILS:,} lines; "
                                             f"the file has {request.line_count:,}: split it into several requests)")]
                request.problem_count = 1
                raise _Refused()
            request.save()
            _trace(request, "fiscal.request.payees_loaded", actor=user.username, now=now, amount_fen=request.total_fen,
                   lines=request.line_count, file_sha256=sha256)
            return request
    except _Refused:
        # Rolled back (lines and all); what the file was found to hold is kept on a request read afresh.
        problems, problem_count = request.problems, request.problem_count
    with transaction.atomic():
        request = _locked(request_id)
        if request.state != R.DRAFT:
            # Submitted (with its previous payees) while this file was read: that request is not this file's to
            # empty, and the file was refused anyway.
            raise DisbursementError("只有草稿可以更换收款人 (payees can be changed only in a draft)", "not_draft")
        request.lines.all().delete()
        request.filename, request.file_sha256, request.upload_path = filename[:255], sha256, upload_path
        request.problems, request.problem_count = problems, problem_count
        request.line_count, request.total_fen = 0, 0
        request.save()
        _trace(request, "fiscal.request.payees_refused", actor=user.username, now=now, problems=request.problem_count,
               file_sha256=sha256)
    return request


def _problem(line: int, column: str, code: str, message: str) -> dict:
    return {"line": line, "column": column, "code": code, "message": message}


def _check_wallets(rows: list[tuple], conditions: Conditions, problems: list[dict],
                   operator_codes: frozenset[str]) -> list[tuple]:
    """One operator call per 1,000 lines: the wallet exists, is active, its holder is the payee, and the
    amount fits a personal wallet's class. A payee the earmark conditions will refuse is only a warning:
    the operator enforces the conditions, and the clerk sees the refusal as a return.

    `rows` are line rows about to be stored (_LineBuffer); returns them with the warnings set and the
    operator's wallet type and class appended, and adds each line's problem to `problems`."""
    limits = settings.WALLET_CLASS_LIMITS
    checked = []
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        checks = verify_wallets(pairs=[(row[5], row[2]) for row in chunk], operator_codes=operator_codes)
        for row, check in zip(chunk, checks):
            line_no, wallet_id, amount_fen = row[1], row[5], row[6]
            problem = _wallet_problem(check, amount_fen, limits)
            warning = None
            if problem:
                problems.append(_problem(line_no, *problem))
            elif conditions.payee_category and check.wallet_type != conditions.payee_category:
                warning = "earmark_category"
            elif conditions.allowed_payees and wallet_id not in conditions.allowed_payees:
                warning = "earmark_payee"
            # Beside the payee's own warnings (a resident ID's unknown region), not instead of them.
            warnings = json.dumps([*json.loads(row[8]), warning], ensure_ascii=False) if warning else row[8]
            checked.append((*row[:8], warnings, *row[9:],
                            (check.wallet_type or "")[:8] if check.exists else "", check.wallet_class))
    return checked


def _wallet_problem(check, amount_fen: int, limits: dict) -> tuple[str, str, str] | None:
    if not check.exists:
        return "钱包编号", "wallet_unknown", "运营机构查无此钱包 (the operator has no such wallet)"
    if not check.active:
        return "钱包编号", "wallet_inactive", "钱包已冻结或注销 (the wallet is frozen or closed)"
    if not check.holder_name_matches:
        return "收款人", "holder_mismatch", "收款人与钱包户名不一致 (payee name does not match the wallet holder)"
    cap = (limits.get(check.wallet_class) or {}).get("balance_cap_fen") if check.wallet_class else None
    if cap is not None and amount_fen > cap:
        return ("金额", "over_wallet_cap",
                f"金额超过{check.wallet_class}类钱包余额上限 (amount exceeds the class {check.wallet_class} wallet's balance cap)")
    return None


def error_report(*, request: PaymentRequest, fmt: str = "csv") -> bytes:
    """The uploaded payee file with an error column, ready to fix and upload again."""
    data = (Path(settings.MEDIA_ROOT) / request.upload_path).read_bytes()
    problems = [payees.LineProblem(p["line"], p["column"], p["code"], p["message"]) for p in request.problems]
    return payees.write_error_report(problems=problems,
                                     original_rows=payees.iter_original_rows(data=data, filename=request.filename),
                                     fmt=fmt)


def add_attachment(*, request_id: int, user, filename: str, data: bytes, now: datetime) -> RequestAttachment:
    """Attach a supporting document (kept as uploaded; traced by its hash) before the request is approved."""
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise DisbursementError("附件不能超过 20 MB (an attachment may be at most 20 MB)", "attachment_too_large")
    if not data:
        raise DisbursementError("附件是空文件 (the attachment is empty)", "attachment_empty")
    sha256 = hashlib.sha256(data).hexdigest()
    path = _store_file(data, sha256, filename, "attachments")
    with transaction.atomic():
        request = _locked(request_id)
        _ensure_finance_user(user, request, role_names=CLERK_ROLES)
        if request.state not in (R.DRAFT, R.SUBMITTED, R.REJECTED):
            raise DisbursementError("审批后不能再添加附件 (attachments cannot be added after approval)", "not_editable")
        attachment = RequestAttachment.objects.create(request=request, filename=Path(filename).name[:255], path=path,
                                                      sha256=sha256, size=len(data), uploaded_by=user, uploaded_at=now)
        _trace(request, "fiscal.request.attachment_added", actor=user.username, now=now, filename=attachment.filename,
               sha256=sha256)
    return attachment


# ---------------------------------------------------------------------------------------------
# Approval
# ---------------------------------------------------------------------------------------------


def submit_request(*, request_id: int, user, now: datetime) -> PaymentRequest:
    """draft -> submitted by its preparer, when it has payees and no problems.

    Raises:
        AccessDenied: not a clerk of the request's bureau, or not its preparer (`not_preparer`).
        DisbursementError: payees_not_ready.
    """
    with transaction.atomic():
        request = _locked(request_id)
        _ensure_finance_user(user, request, role_names=CLERK_ROLES)
        _ensure_preparer(user, request, "只有经办人可以提交支付申请 (only whoever prepared the request may submit it)")
        if request.problem_count or not request.line_count:
            raise DisbursementError("请先上传无错误的收款人文件 (upload a payee file without problems first)",
                                    "payees_not_ready")
        request.submit()
        request.submitted_at = now
        request.first_approved_by, request.first_approved_at, request.reason = None, None, ""
        request.save()
        _trace(request, "fiscal.request.submitted", actor=user.username, now=now, amount_fen=request.total_fen,
               lines=request.line_count)
    return request


def needs_second_approval(request: PaymentRequest) -> bool:
    return request.total_fen > settings.DISBURSEMENT_SECOND_APPROVAL_FEN


def approve_request(*, request_id: int, user, now: datetime) -> PaymentRequest:
    """submitted -> approved by a finance approver who did not prepare it. Above the second-approval
    amount the first approval is recorded and a different approver completes it. The final approval
    reserves the total on the quota and queues the voucher (sent after commit).

    Raises:
        MakerCheckerViolation: the approver prepared the request or approved it already.
        DisbursementError: quota_insufficient.
    """
    with transaction.atomic():
        request = _locked(request_id)
        _ensure_finance_user(user, request, role_names=APPROVER_ROLES)
        ensure_can_approve(approver=user, prepared_by_id=request.prepared_by_id, approver_roles=APPROVER_ROLES,
                           also_not=tuple(filter(None, [request.first_approved_by_id])))
        if request.state != R.SUBMITTED:
            request.approve()  # raises TransitionNotAllowed with the state in the message
        if request.problem_count or not request.line_count or request.total_fen <= 0:
            raise DisbursementError("没有可支付的收款人 (the request has no payees to pay)", "payees_not_ready")
        if needs_second_approval(request) and request.first_approved_by_id is None:
            _ensure_quota_covers(_locked_quota(request.quota_id), request)  # say so now, not at the second approval
            request.first_approved_by, request.first_approved_at = user, now
            request.save()
            _trace(request, "fiscal.request.first_approval", actor=user.username, now=now, amount_fen=request.total_fen)
            return request
        _reserve(_locked_quota(request.quota_id), request, actor=user.username, now=now)
        request.approve()
        request.approved_by, request.approved_at = user, now
        request.voucher_no = request.make_voucher_no()
        request.save()
        _trace(request, "fiscal.request.approved", actor=user.username, now=now, amount_fen=request.total_fen,
               voucher_no=request.voucher_no)
        _queue_voucher(request.pk)
    return request


def reject_request(*, request_id: int, user, reason: str, now: datetime) -> PaymentRequest:
    """submitted -> rejected (back to the preparer), with a reason."""
    reason = _required_reason(reason)
    with transaction.atomic():
        request = _locked(request_id)
        _ensure_finance_user(user, request, role_names=APPROVER_ROLES)
        request.reject()
        request.reason = reason
        request.save()
        _trace(request, "fiscal.request.rejected", actor=user.username, now=now, reason=reason)
    return request


def rework_request(*, request_id: int, user, now: datetime) -> PaymentRequest:
    """rejected -> draft: the preparer fixes what the approver asked for."""
    with transaction.atomic():
        request = _locked(request_id)
        _ensure_finance_user(user, request, role_names=CLERK_ROLES)
        request.rework()
        request.save()
        _trace(request, "fiscal.request.reworked", actor=user.username, now=now)
    return request


def _voucher_accepted_there(request: PaymentRequest) -> bool:
    """Whether the budget system holds an approved request's voucher as accepted (reserved there).

    Its number is sent again, which the budget system dedupes: the answer is the one given to that number,
    now or before, so neither a reply that was lost nor a delivery still on its way (answered late) can leave
    a reservation behind a cancellation. A SOAP fault applied nothing this time; the voucher's status then says
    whether an earlier delivery was accepted.

    Raises:
        BudgetError: the budget system could not be asked; nothing is known.
    """
    try:
        ack = _budget().submit_voucher(build_voucher(request))
    except BudgetFault:
        state = _budget().voucher_status(request.voucher_no).state
        return state in (VoucherState.ACCEPTED, VoucherState.REPORTED)
    return ack.accepted


def cancel_request(*, request_id: int, user, reason: str, now: datetime) -> PaymentRequest:
    """Cancel (作废) before paying starts, with a reason. What was reserved on the quota is released;
    a voucher the budget system accepted is answered with every line returned, so its reservation
    there is released too. An approved request's voucher may have reached the budget system (a reply
    lost, a delivery answered late, the after-commit send still on its way): the budget system is asked
    first (`_voucher_accepted_there`), and while it cannot be asked nothing is cancelled.

    Raises:
        BudgetError: an approved request's voucher could not be asked about; nothing changed.
        ConcurrentTransition: the request was approved while the budget system was being asked.
    """
    reason = _required_reason(reason)
    seen = PaymentRequest.objects.select_related("quota", "payer_wallet").get(pk=request_id)
    _ensure_finance_user(user, seen, role_names=CLERK_ROLES + APPROVER_ROLES)
    # Asked before the lock is taken: no lock is held while the budget system answers.
    accepted_there = _voucher_accepted_there(seen) if seen.state == R.APPROVED else None
    with transaction.atomic():
        request = _locked(request_id)
        _ensure_finance_user(user, request, role_names=CLERK_ROLES + APPROVER_ROLES)
        if request.state == R.APPROVED and accepted_there is None:
            raise ConcurrentTransition("approved meanwhile: its voucher may be on its way to the budget system")
        had_voucher = request.state == R.VOUCHER_ISSUED or (request.state == R.APPROVED and accepted_there)
        reserved = _outstanding_reservation(request) if request.state in RESERVING_STATES else 0
        request.cancel()
        request.reason = reason
        request.finished_at = now
        if had_voucher:
            request.lines.update(returned=True, return_reason=f"作废 (cancelled): {reason}"[:255])
            request.returned_count, request.returned_fen = request.line_count, request.total_fen
        request.save()
        _move_on_quota(request, released_fen=reserved, actor=user.username, now=now)
        _trace(request, "fiscal.request.cancelled", actor=user.username, now=now, amount_fen=request.total_fen,
               reason=reason)
        if had_voucher:
            _create_reports(request, now=now)
    return request


def _required_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DisbursementError("请填写原因 (a reason is required)", "reason_required")
    _ensure_no_control_character(reason, zh="原因", en="the reason")
    return reason[:255]


def _ensure_no_control_character(text: str, *, zh: str, en: str) -> None:
    """Text that travels to the budget system (a purpose in the voucher, a reason in a result report) must be
    text XML can carry: refused here, where the clerk can fix it, not when the voucher or report is written."""
    if payees.CONTROL_CHARACTER.search(text):
        raise DisbursementError(f"{zh}含有不可见的控制字符，请删除 ({en} contains an invisible control character: "
                                f"delete it)", "control_character")


def _xml_text(text: str) -> str:
    """What the operator wrote (a refusal, a transaction id) or an older row held, without the control characters
    XML cannot carry: a voucher or report holding one could never be sent, and would hold up every one after it."""
    return payees.CONTROL_CHARACTER.sub("", text) if text and not text.isprintable() else text


# ---------------------------------------------------------------------------------------------
# The voucher
# ---------------------------------------------------------------------------------------------


def _queue_voucher(request_id: int) -> None:
    from .tasks import send_voucher_task

    transaction.on_commit(partial(send_voucher_task.apply_async, kwargs={"request_id": request_id}))


def build_voucher(request: PaymentRequest) -> Voucher:
    quota = request.quota
    bill_no = request.bill_no
    # Payee wallets are registered when paying starts; the operator's code is the wallet id's prefix.
    lines = request.lines.order_by("line_no").values_list("line_no", "payee_name", "wallet_id", "amount_fen", "memo")
    payer = request.payer_wallet
    return Voucher(
        # The business day in Asia/Shanghai (the voucher PDF's date too): the stored moment is UTC, whose date
        # is the day before from 00:00 to 08:00 Beijing time.
        voucher_no=request.voucher_no, vou_date=timezone.localdate(request.approved_at or request.created_at),
        fiscal_year=quota.fiscal_year, adm_div_code=quota.adm_div_code, pay_type_code=request.pay_type,
        bill_no=bill_no, agency_code=quota.agency_code, agency_name=quota.agency_name, quota_id=quota.quota_id,
        exp_func_code=request.exp_func_code, exp_eco_code=request.exp_eco_code, fund_type_code=quota.fund_type_code,
        pay_acct_no=payer.wallet_id, pay_acct_name=payer.holder_name, amount_fen=request.total_fen,
        purpose=_xml_text(request.title),
        details=tuple(
            VoucherDetail(tracking_id=f"{bill_no}{line_no:06d}", payee_name=_xml_text(name), payee_acct_no=wallet_id,
                          payee_bank_no=_operator_bank_no(wallet_id[:3]), amount_fen=amount,
                          purpose=_xml_text(memo or request.title))
            for line_no, name, wallet_id, amount, memo in lines.iterator(chunk_size=5000)
        ),
    )


def _operator_bank_no(operator_code: str) -> str:
    """The 12-digit institution code the voucher names for a wallet's operator. This project's wallet
    ids carry a 3-digit operator prefix; a real deployment maps operators to their CNAPS codes here."""
    return operator_code.ljust(12, "0")


def send_voucher(*, request_id: int, now: datetime) -> PaymentRequest:
    """Send an approved request's voucher (again, under the same number, if it was sent before) and act on
    the answer: accepted -> voucher_issued and paying is queued after commit; refused ->
    voucher_refused and the reservation is released. No lock is held while the budget system answers.
    An unavailable budget system leaves the request approved for the periodic task; a fault is recorded
    for the clerk. Safe to call twice."""
    request = PaymentRequest.objects.select_related("quota", "payer_wallet").get(pk=request_id)
    if request.state != R.APPROVED:
        return request
    voucher = build_voucher(request)
    try:
        ack = _budget().submit_voucher(voucher)
    except BudgetError as error:
        with transaction.atomic():
            request = _locked(request_id)
            request.voucher_attempts += 1
            request.voucher_error = str(error)[:255]
            request.save(update_fields=["voucher_attempts", "voucher_error"])
        logger.warning("voucher %s not delivered (%s): %s", voucher.voucher_no, type(error).__name__, error)
        return request
    with transaction.atomic():
        request = _locked(request_id)
        if request.state != R.APPROVED:  # another delivery got here first
            return request
        request.voucher_attempts += 1
        request.voucher_error = "" if ack.accepted else f"{ack.code}: {ack.message}"[:255]
        if not ack.accepted:
            request.refuse_voucher()
            request.finished_at = now
            request.save()
            _move_on_quota(request, released_fen=_outstanding_reservation(request), actor="system", now=now)
            _trace(request, "fiscal.voucher.refused", actor="budget-system", now=now, amount_fen=request.total_fen,
                   voucher_no=request.voucher_no, code=ack.code, message=ack.message)
            return request
        request.issue_voucher()
        request.voucher_issued_at = now
        _trace(request, "fiscal.voucher.issued", actor="budget-system", now=now, amount_fen=request.total_fen,
               voucher_no=request.voucher_no, ack_id=ack.ack_id, duplicate=ack.duplicate)
        request.save()
        from .tasks import start_paying_task

        transaction.on_commit(partial(start_paying_task.apply_async, kwargs={"request_id": request_id}))
    return request


def resend_pending(*, now: datetime) -> dict[str, int]:
    """The periodic task: approved requests whose voucher was not yet acknowledged, and pending result
    reports, are sent again under their own numbers; acknowledged vouchers not yet paying start paying
    (and paying ones whose transfers were not all made: the task making them died)."""
    vouchers = list(PaymentRequest.objects.filter(state=R.APPROVED).values_list("pk", flat=True))
    failed = 0
    for request_id in vouchers:
        failed += _each_on_its_own(send_voucher, request_id=request_id, now=now)
    # Acknowledged vouchers whose paying did not start (a lost task, or the account was short).
    unstarted = PaymentRequest.objects.filter(Q(state=R.VOUCHER_ISSUED) | Q(
        state=R.PAYING, lines__transfer__isnull=True, lines__returned=False)).distinct()
    for request_id in unstarted.values_list("pk", flat=True):
        failed += _each_on_its_own(start_paying, request_id=request_id, now=now)
    with_reports = list(ResultReport.objects.filter(state=ResultReport.State.PENDING)
                        .values_list("request_id", flat=True).distinct())
    for request_id in with_reports:
        failed += _each_on_its_own(send_reports, request_id=request_id, now=now)
    return {"vouchers": len(vouchers), "reports": len(with_reports), "errors": failed}


def _each_on_its_own(action: Callable[..., PaymentRequest], *, request_id: int, now: datetime) -> int:
    """One request's step of a periodic sweep: an error is logged with its traceback and counted (1), and the sweep
    goes on, so one request that cannot move (a bug, data the budget system cannot take) never holds up the
    vouchers, payments and reports of every request after it."""
    try:
        action(request_id=request_id, now=now)
    except Exception:
        logger.exception("fiscal sweep: %s of request %s failed", action.__name__, request_id)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# Paying
# ---------------------------------------------------------------------------------------------


def _register_payee_wallets(rows: list[tuple]) -> dict[int, int]:
    """The payee wallets of these lines registered (persons in bulk; organizations one by one, they are
    few), in the caller's transaction. `rows` are (id, wallet_id, payee_name, id_kind, id_number,
    wallet_type, wallet_class) of lines that have no payee wallet yet; returns {line pk: wallet pk} for
    the caller to record (_create_line_transfers does it in the same UPDATE that links the transfers)."""
    if not rows:
        return {}
    people = [(w, name, number) for _, w, name, kind, number, _, _ in rows if kind == "resident"]
    # The import verified every wallet with the operator and kept its type and class on the line:
    # registration takes those instead of asking again (lines imported before that are asked).
    known_checks = {
        w: WalletCheck.passed(wallet_id=w, wallet_type=wallet_type, wallet_class=wallet_class)
        for _, w, _, kind, _, wallet_type, wallet_class in rows if kind == "resident" and wallet_type
    }
    wallet_pks = ensure_personal_wallets(holders=people, known_checks=known_checks) if people else {}
    for _, wallet_id, name, kind, number, _, _ in rows:
        if kind == "uscc" and wallet_id not in wallet_pks:
            wallet_pks[wallet_id] = _organization_wallet(wallet_id=wallet_id, name=name, uscc=number).pk
    return {pk: wallet_pks[wallet_id] for pk, wallet_id, *_ in rows}


def _line_rows(request: PaymentRequest, columns: list[str], line_ids: list[int] | None) -> list[tuple]:
    """Columns of the request's lines (those among `line_ids`, if given), in line order.

    The id list goes as one array parameter on PostgreSQL, not as thousands of ORM parameters, and
    is the query's only condition: the primary key then finds the rows. With `request_id = ...`
    beside it, a planner that has not yet seen the freshly loaded lines may scan the request's
    50,000 lines and test each against the whole array (seconds per chunk); the other conditions
    are checked here instead."""
    table = PaymentLine._meta.db_table
    select = ", ".join(["request_id", "line_no", *columns])
    with connection.cursor() as cursor:
        if line_ids is None:
            cursor.execute(f"SELECT {select} FROM {table} WHERE request_id = %s", [request.pk])
        elif not line_ids:
            return []
        else:
            where, params = bulk.in_clause("id", line_ids)
            cursor.execute(f"SELECT {select} FROM {table} WHERE {where}", params)
        rows = cursor.fetchall()
    rows.sort(key=lambda row: row[1])
    return [row[2:] for row in rows if row[0] == request.pk]


def _organization_wallet(*, wallet_id: str, name: str, uscc: str) -> Wallet:
    wallet = Wallet.objects.filter(wallet_id=wallet_id).first()
    if wallet:
        return wallet
    check = verify_wallets(pairs=[(wallet_id, name)])[0]
    operator = Organization.objects.filter(org_type=Organization.Type.OPERATOR_BANK, code=wallet_id[:3]).first()
    if operator is None:
        raise DisbursementError(f"未登记的运营机构代码 {wallet_id[:3]} (no operator registered for this wallet)",
                                "no_operator")
    org = Organization.objects.filter(uscc=uscc).first() or register_organization(
        name=name, org_type=Organization.Type.BUDGET_UNIT if uscc[:1] in "1" else Organization.Type.EMPLOYER, uscc=uscc)
    return register_wallet(wallet_id=wallet_id, wallet_type=check.wallet_type or Wallet.Type.CORPORATE,
                           operator=operator, holder_org=org, holder_name=name)


def _create_line_transfers(request: PaymentRequest, attempts: list[tuple[int, int]], *, actor: str,
                           now: datetime, payee_wallets: dict[int, int] | None = None,
                           line_rows: list[tuple] | None = None) -> list[int]:
    """One transfer per (line pk, attempt number), in the caller's transaction. Keys name the attempt
    (fiscal:<request>:<line>, then :<n>), so a retry is a new payment and a repeated call the same one.
    `payee_wallets` ({line pk: wallet pk}, from _register_payee_wallets) are recorded on the lines in
    the same UPDATE as their transfers. `line_rows` are the lines' (id, line_no, payee_wallet_id,
    amount_fen, memo) in line order when the caller has them already; otherwise they are read."""
    attempt_of = dict(attempts)
    payee_wallets = payee_wallets or {}
    if line_rows is None:
        line_rows = _line_rows(request, ["id", "line_no", "payee_wallet_id", "amount_fen", "memo"], list(attempt_of))
    rows = [(pk, line_no, payee_wallets.get(pk, wallet_pk), amount, memo)
            for pk, line_no, wallet_pk, amount, memo in line_rows]
    line_type = ContentType.objects.get_for_model(PaymentLine)
    conditions = Conditions.from_json(request.conditions) if request.conditions else None
    ids = create_transfers(
        organization_id=request.organization_id, batch_ref=request.batch_ref, actor=actor, now=now,
        transfers=[
            NewTransfer(
                payer_id=request.payer_wallet_id, payee_id=wallet_pk, amount_fen=amount,
                idempotency_key=f"fiscal:{request.pk}:{line_no}" + (f":{attempt_of[pk]}" if attempt_of[pk] > 1 else ""),
                purpose_code=request.purpose_code, memo=(memo or request.title)[:140], source_type_id=line_type.pk,
                source_id=pk, source_ref=f"{request.batch_ref} line {line_no}", conditions=conditions,
            )
            for pk, line_no, wallet_pk, amount, memo in rows
        ],
    )
    if payee_wallets:
        bulk.update_rows(table=PaymentLine._meta.db_table,
                         columns=[("transfer_id", "bigint"), ("attempts", "integer"), ("payee_wallet_id", "bigint")],
                         rows=[(pk, transfer_id, attempt_of[pk], wallet_pk)
                               for (pk, _, wallet_pk, *_), transfer_id in zip(rows, ids)])
    else:
        bulk.update_rows(table=PaymentLine._meta.db_table, columns=[("transfer_id", "bigint"), ("attempts", "integer")],
                         rows=[(pk, transfer_id, attempt_of[pk]) for (pk, *_), transfer_id in zip(rows, ids)])
    return ids


def start_paying(*, request_id: int, now: datetime, user=None) -> PaymentRequest:
    """voucher_issued -> paying, then one transfer per line, created PAY_CHUNK lines at a time (the first
    chunk one operator batch), each chunk committed and handed to the workers at once, so paying starts
    while the rest are still being made.

    Runs after the voucher is acknowledged (and again from the clerk's button and the periodic task);
    first checks that the payer's zero-balance account holds the total beyond what the other requests paying
    from it still need (`_set_aside_fen`), otherwise the request waits with the reason. Resumable and safe to
    run twice at once: each chunk takes the request's row lock and picks lines that have no transfer yet; keys
    are fixed per line (fiscal:<request>:<line>)."""
    request = PaymentRequest.objects.select_related("payer_wallet").get(pk=request_id)
    if user is not None:
        _ensure_finance_user(user, request, role_names=CLERK_ROLES + APPROVER_ROLES)
    actor = user.username if user else "system"
    if request.state == R.VOUCHER_ISSUED:
        owed = _owed_by_other_requests(payer_wallet_id=request.payer_wallet_id, but=request.pk)  # before asking
        balance = operator_balance(wallet=request.payer_wallet)  # outside the transaction: no lock while asking
        with transaction.atomic():
            request = _locked(request_id)
            if request.state != R.VOUCHER_ISSUED:
                return request
            set_aside = _set_aside_fen(payer_wallet_id=request.payer_wallet_id, but=request.pk, owed_when_asked=owed)
            if balance.balance_fen - set_aside < request.total_fen:
                request.voucher_error = (f"付款账户余额不足：现有 {format_yuan(balance.balance_fen)}，其中 "
                                         f"{format_yuan(set_aside)} 留给付款中的其他申请，需要 "
                                         f"{format_yuan(request.total_fen)} (the payer account is short of the total, "
                                         f"beyond what other requests paying from it still need)")[:255]
                request.save(update_fields=["voucher_error"])
                return request
            request.start_paying()
            request.voucher_error = ""
            request.save()
            _trace(request, "fiscal.request.paying", actor=actor, now=now, amount_fen=request.total_fen,
                   lines=request.line_count, voucher_no=request.voucher_no)
    if request.state != R.PAYING:
        return request
    # The first range is one operator batch: the workers start paying while the larger ones are made.
    numbers = PaymentLine.objects.filter(request_id=request_id).aggregate(first=Min("line_no"), last=Max("line_no"))
    after_line_no, last_line_no = (numbers["first"] or 1) - 1, numbers["last"] or 0
    span = min(settings.TRANSFER_CHUNK_SIZE, PAY_CHUNK)
    while after_line_no < last_line_no and _create_next_transfers(
            request_id, actor=actor, now=now, line_numbers=(after_line_no, after_line_no + span)):
        after_line_no, span = after_line_no + span, PAY_CHUNK
    # With Celery eager the transfers were paid at each commit; with workers this returns at once.
    return finish_request_if_done(request_id=request_id, now=now)


def _owed_by_other_requests(*, payer_wallet_id: int, but: int) -> dict[int, int]:
    """{request id: fen} for the other requests paying from the wallet: their lines neither paid nor returned."""
    owed = {}
    for other in PaymentRequest.objects.filter(payer_wallet_id=payer_wallet_id, state=R.PAYING).exclude(pk=but):
        progress = line_progress(request=other)
        owed[other.pk] = other.total_fen - progress.paid_fen - progress.returned_fen
    return owed


def _set_aside_fen(*, payer_wallet_id: int, but: int, owed_when_asked: dict[int, int]) -> int:
    """In the caller's transaction, under the wallet's lock (which orders two requests starting at once from one
    account: the second sees the first paying): what the other requests paying from the wallet still need, each
    at the more of what it needed before the balance was asked (`owed_when_asked`: money paid since was still in
    that balance) and what it needs now."""
    Wallet.objects.select_for_update(no_key=True).filter(pk=payer_wallet_id).first()
    owed = _owed_by_other_requests(payer_wallet_id=payer_wallet_id, but=but)
    for pk, fen in owed_when_asked.items():
        owed[pk] = max(owed.get(pk, 0), fen)
    return sum(owed.values())


def _create_next_transfers(request_id: int, *, actor: str, now: datetime, line_numbers: tuple[int, int]) -> bool:
    """First payments for the lines numbered after line_numbers[0] up to line_numbers[1] that have none
    yet, in one transaction. False when the request is no longer paying.

    One query reads everything the chunk needs. A range of line numbers, not "the next N lines": bounded
    by the request's index whatever the planner believes (a new request is not in the table's statistics
    until it is analyzed, and "the next 5,000" was then planned as a read of every line left and a sort).
    The caller moves the range on: the lines before it got their transfers in earlier transactions, so
    making the tenth chunk does not step over the nine before it again."""
    with transaction.atomic():
        request = _locked(request_id)
        if request.state != R.PAYING:
            return False
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, line_no, wallet_id, payee_name, id_kind, id_number, wallet_type, wallet_class, "
                f"payee_wallet_id, amount_fen, memo FROM {PaymentLine._meta.db_table} "
                "WHERE request_id = %s AND line_no > %s AND line_no <= %s AND transfer_id IS NULL AND NOT returned "
                "ORDER BY line_no",
                [request.pk, *line_numbers])
            rows = cursor.fetchall()
        if not rows:
            return True
        wallets = _register_payee_wallets([row[:1] + row[2:8] for row in rows if row[8] is None])
        _create_line_transfers(request, [(row[0], 1) for row in rows], actor=actor, now=now, payee_wallets=wallets,
                               line_rows=[(row[0], row[1], row[8], row[9], row[10]) for row in rows])
        return True


@dataclass(frozen=True)
class LineProgress:
    """Where a request's lines stand, each by its current transfer."""

    total: int
    paid: int
    paid_fen: int
    failed: int  # the current attempt failed or its money came back; not yet retried or returned
    open: int  # being paid
    returned: int
    returned_fen: int

    @property
    def done(self) -> bool:
        return self.open == 0

    @property
    def percent(self) -> int:
        decided = self.paid + self.failed + self.returned
        return 100 if not self.total else decided * 100 // self.total


def line_progress(*, request: PaymentRequest) -> LineProgress:
    """Every line counted once: paid + failed + open + returned == total (a transfer's state is one of
    settled, NOT_PAID_STATES or open)."""
    settled = Q(transfer__state=TransferState.SETTLED, returned=False)
    failed = Q(transfer__state__in=NOT_PAID_STATES, returned=False)
    still_open = (Q(transfer__state__in=[TransferState.PENDING, TransferState.SUBMITTED, TransferState.UNKNOWN])
                  | Q(transfer__isnull=True)) & Q(returned=False)
    totals = request.lines.aggregate(
        n=Count("pk"), n_paid=Count("pk", filter=settled), fen_paid=Sum("amount_fen", filter=settled),
        n_failed=Count("pk", filter=failed), n_open=Count("pk", filter=still_open),
        n_returned=Count("pk", filter=Q(returned=True)), fen_returned=Sum("amount_fen", filter=Q(returned=True)),
    )
    return LineProgress(total=totals["n"], paid=totals["n_paid"], paid_fen=totals["fen_paid"] or 0,
                        failed=totals["n_failed"], open=totals["n_open"], returned=totals["n_returned"],
                        returned_fen=totals["fen_returned"] or 0)


def _still_paying(request_id: int) -> bool:
    """A cheap "not done yet", without the request's lock: one of its transfers is still open (in the
    transfer core's outbox, a small table: exactly the pending, submitted and unknown transfers), or a
    line waits for its first transfer. Polled while paying, this spares the lock that the chunks being
    made need and an aggregate over every line; once it says no, line_progress decides under the lock."""
    if has_open_transfers(batch_ref=PaymentRequest(pk=request_id).batch_ref):
        return True
    return PaymentLine.objects.filter(request_id=request_id, transfer__isnull=True, returned=False).exists()


def finish_request_if_done(*, request_id: int, now: datetime) -> PaymentRequest:
    """paying -> paid | partially_paid | failed once no line's transfer is open; settled amounts are
    consumed on the quota. A request with nothing left to decide is reported at once. Safe to call as
    often as you like (the periodic task does)."""
    if _still_paying(request_id):
        return PaymentRequest.objects.get(pk=request_id)
    with transaction.atomic():
        request = _locked(request_id)
        if request.state != R.PAYING:
            return request
        progress = line_progress(request=request)
        if not progress.done:
            return request
        if progress.failed == 0 and progress.returned == 0:
            request.finish_paid()
        elif progress.paid == 0:
            request.finish_failed()
        else:
            request.finish_partially_paid()
        _record_paid_lines(request, progress, actor="system", now=now)
        request.finished_at = now
        request.save()
        _trace(request, f"fiscal.request.{request.state}", actor="system", now=now, amount_fen=progress.paid_fen,
               paid=progress.paid, failed=progress.failed, returned=progress.returned)
        if progress.failed == 0:
            _report(request, now=now)
    return request


def _record_paid_lines(request: PaymentRequest, progress: LineProgress, *, actor: str, now: datetime) -> None:
    """The request's paid figures follow its lines, in the caller's transaction: lines settled since are consumed
    on the quota, and a line counted as paid whose money came back since (returned by the operator, reversed) is
    taken off what was consumed and reserved again, as a refused line is, until the clerk retries or returns it."""
    _move_on_quota(request, consumed_fen=progress.paid_fen - request.paid_fen, actor=actor, now=now)
    request.paid_count, request.paid_fen = progress.paid, progress.paid_fen


def finish_request_when_decided(*, batch_ref: str, now: datetime, **kwargs) -> None:
    """Receiver of the transfer core's `batch_decided`: the request's last transfer was just decided."""
    request_id = PaymentRequest.pk_of_batch_ref(batch_ref)
    if request_id is not None:
        finish_request_if_done(request_id=request_id, now=now)


def finish_paying_requests(*, now: datetime) -> int:
    """The periodic task: every paying request whose lines are all decided moves on."""
    finished = 0
    for request_id in PaymentRequest.objects.filter(state=R.PAYING).values_list("pk", flat=True):
        finished += finish_request_if_done(request_id=request_id, now=now).state != R.PAYING
    return finished


def _failed_lines(request: PaymentRequest, line_ids: list[int]) -> list[PaymentLine]:
    lines = list(request.lines.filter(pk__in=line_ids, returned=False).select_related("transfer").order_by("line_no"))
    if len(lines) != len(set(line_ids)):
        raise DisbursementError("有明细不属于此申请或已退回 (some lines are not in this request or were returned)",
                                "unknown_lines")
    for line in lines:
        if line.transfer is None or line.transfer.state not in NOT_PAID_STATES:
            raise DisbursementError(f"第{line.line_no}行未失败 (line {line.line_no} has not failed)", "line_not_failed")
    return lines


def retry_lines(*, request_id: int, line_ids: list[int], user, now: datetime) -> PaymentRequest:
    """Pay failed lines again to the same wallet (e.g. after the zero-balance account was topped up):
    each gets a new transfer under a new key. A different wallet is a new request, approved again."""
    with transaction.atomic():
        request = _locked(request_id)
        _ensure_finance_user(user, request, role_names=CLERK_ROLES)
        if request.state not in (R.PARTIALLY_PAID, R.FAILED):
            raise DisbursementError("只能在支付结束后重试失败的明细 (retry failed lines once paying has ended)",
                                    "not_finished")
        lines = _failed_lines(request, line_ids)
        request.retry()
        _create_line_transfers(request, [(line.pk, line.attempts + 1) for line in lines], actor=user.username, now=now)
        request.finished_at = None
        request.save()
        _trace(request, "fiscal.request.retried", actor=user.username, now=now,
               amount_fen=sum(line.amount_fen for line in lines), lines=[line.line_no for line in lines])
    return finish_request_if_done(request_id=request_id, now=now)


def return_lines(*, request_id: int, line_ids: list[int], user, reason: str, now: datetime) -> PaymentRequest:
    """Confirm failed lines as returned (退回): their amounts are released on the quota and reported to
    the budget system with the refusal and the clerk's reason. When no failed line is left, the request's
    results are reported."""
    reason = _required_reason(reason)
    with transaction.atomic():
        request = _locked(request_id)
        _ensure_finance_user(user, request, role_names=CLERK_ROLES)
        if request.state not in (R.PARTIALLY_PAID, R.FAILED):
            raise DisbursementError("只能在支付结束后处理退回 (handle returns once paying has ended)", "not_finished")
        lines = _failed_lines(request, line_ids)
        for line in lines:
            refusal = line.transfer.failure_message or line.transfer.failure_code
            line.returned = True
            line.return_reason = f"{refusal}; {reason}"[:255] if refusal else reason
        PaymentLine.objects.bulk_update(lines, ["returned", "return_reason"])
        progress = line_progress(request=request)
        # A line counted as paid when paying ended whose money came back since is consumed no more: reserved
        # again first, then released with the others (released from the reservation alone, it would take
        # another request's reservation and stay consumed as well).
        _record_paid_lines(request, progress, actor=user.username, now=now)
        released = sum(line.amount_fen for line in lines)
        request.returned_count += len(lines)
        request.returned_fen += released
        request.save()
        _move_on_quota(request, released_fen=released, actor=user.username, now=now)
        _trace(request, "fiscal.request.lines_returned", actor=user.username, now=now, amount_fen=released,
               lines=[line.line_no for line in lines], reason=reason)
        if progress.failed == 0:
            _report(request, now=now)
    return request


# ---------------------------------------------------------------------------------------------
# Reporting results to the budget system, reconciliation
# ---------------------------------------------------------------------------------------------


def _report(request: PaymentRequest, *, now: datetime) -> None:
    request.start_reporting()
    request.save()
    _create_reports(request, now=now)


def _create_reports(request: PaymentRequest, *, now: datetime) -> None:
    """Result reports for every line not yet reported, REPORT_CHUNK lines each, sent after commit."""
    unreported = list(request.lines.filter(report_no="").order_by("line_no")
                      .values_list("pk", "amount_fen", "returned"))
    first = request.reports.count()
    assignments = []
    for n, start in enumerate(range(0, len(unreported), REPORT_CHUNK), start=first + 1):
        chunk = unreported[start:start + REPORT_CHUNK]
        report_no = f"{request.voucher_no}R{n:03d}"
        ResultReport.objects.create(
            request=request, report_no=report_no, line_count=len(chunk), created_at=now,
            paid_fen=sum(amount for _, amount, returned in chunk if not returned),
            returned_fen=sum(amount for _, amount, returned in chunk if returned),
        )
        assignments += [(pk, report_no) for pk, _, _ in chunk]
    bulk.update_rows(table=PaymentLine._meta.db_table, columns=[("report_no", "text")], rows=assignments)
    _trace(request, "fiscal.request.reporting", actor="system", now=now, reports=len(assignments) and n - first + 1)
    from .tasks import send_report_task

    # One task a report: with two workers, one report is being built while the budget system reads another.
    pending = request.reports.filter(state=ResultReport.State.PENDING).order_by("pk")
    for report_id in pending.values_list("pk", flat=True):
        transaction.on_commit(partial(send_report_task.apply_async, kwargs={"report_id": report_id}))


def build_report(report: ResultReport) -> PaymentReport:
    bill_no = report.request.bill_no
    rows = (PaymentLine.objects.filter(request_id=report.request_id, report_no=report.report_no).order_by("line_no")
            .values_list("line_no", "amount_fen", "returned", "return_reason", "transfer__settled_at",
                         "transfer__operator_txn_id"))
    return PaymentReport(
        report_no=report.report_no, voucher_no=report.request.voucher_no,
        lines=tuple(
            PaymentLineResult(tracking_id=f"{bill_no}{line_no:06d}",
                              status=LineStatus.RETURNED if returned else LineStatus.PAID, amount_fen=amount,
                              paid_at=None if returned else settled_at,
                              agent_business_no="" if returned else _xml_text(txn_id or ""),
                              return_reason=_xml_text(reason) if returned else "")
            for line_no, amount, returned, reason, settled_at, txn_id in rows.iterator(chunk_size=5000)
        ),
    )


def _send_report(report: ResultReport, *, now: datetime) -> bool:
    """Send one pending report and record the answer; False when the budget system could not be reached
    (nothing is known: the report stays pending and is sent again under its number)."""
    try:
        ack = _budget().report_payment(build_report(report))
    except BudgetError as error:
        ResultReport.objects.filter(pk=report.pk).update(attempts=F("attempts") + 1, error=str(error)[:255])
        return not isinstance(error, BudgetUnavailable)
    ResultReport.objects.filter(pk=report.pk, state=ResultReport.State.PENDING).update(
        attempts=F("attempts") + 1, acknowledged_at=now,
        state=ResultReport.State.ACKNOWLEDGED if ack.accepted else ResultReport.State.REFUSED,
        error="" if ack.accepted else f"{ack.code}: {ack.message}"[:255],
    )
    return True


def _finish_reporting_if_acknowledged(request_id: int, *, now: datetime) -> PaymentRequest:
    """reporting -> reported once every report is acknowledged. Under the request's lock, after the
    caller's own report was recorded: of two reports acknowledged at once, the later check sees both."""
    with transaction.atomic():
        request = _locked(request_id)
        if request.state == R.REPORTING and not request.reports.exclude(state=ResultReport.State.ACKNOWLEDGED).exists():
            request.finish_reporting()
            request.reported_at = now
            request.save()
            _trace(request, "fiscal.request.reported", actor="budget-system", now=now, amount_fen=request.paid_fen,
                   reports=request.reports.count(), returned_fen=request.returned_fen)
    return request


def send_report(*, report_id: int, now: datetime) -> PaymentRequest:
    """Send one result report if it is still pending (under its own number, so a resend is harmless), then
    move its request to reported if that was the last. No lock is held while the budget system answers."""
    report = ResultReport.objects.select_related("request").get(pk=report_id)
    if report.state == ResultReport.State.PENDING:
        _send_report(report, now=now)
    return _finish_reporting_if_acknowledged(report.request_id, now=now)


def send_reports(*, request_id: int, now: datetime) -> PaymentRequest:
    """Send a request's pending result reports in order (the periodic task's resend), stopping at the first
    the budget system could not be reached for; when all are acknowledged, reporting -> reported."""
    for report in ResultReport.objects.select_related("request").filter(
            request_id=request_id, state=ResultReport.State.PENDING).order_by("pk"):
        if not _send_report(report, now=now):
            break  # try the rest later, in order
    return _finish_reporting_if_acknowledged(request_id, now=now)


def reconcile_request(*, request_id: int, now: datetime, user=None) -> PaymentRequest:
    """reported -> reconciled when the budget system's figures for the voucher equal ours; otherwise every
    difference is written on the request and it stays reported for a person to look at.

    Compared: the voucher's state (every line reported), its total and number of lines, the lines reported, the
    paid and returned amounts. Ours are what the lines hold now (each by its current payment), not only the
    figures recorded when paying ended: a payment whose money came back since is a difference, and so are
    recorded figures that no longer match the lines.

    Raises:
        BudgetError: the budget system could not be asked.
    """
    request = PaymentRequest.objects.get(pk=request_id)
    if user is not None:
        _ensure_finance_user(user, request, role_names=CLERK_ROLES + APPROVER_ROLES)
    if request.state != R.REPORTED:
        raise DisbursementError("只有已回单的申请可以对账 (only a reported request can be reconciled)", "not_reported")
    status = _budget().voucher_status(request.voucher_no)
    actor = user.username if user else "system"
    with transaction.atomic():
        request = _locked(request_id)
        if request.state != R.REPORTED:
            return request
        progress = line_progress(request=request)
        ours = {"state": VoucherState.REPORTED, "amount": request.total_fen, "lines": request.line_count,
                "reported": request.line_count, "paid": progress.paid_fen, "returned": progress.returned_fen}
        theirs = {"state": status.state, "amount": status.amount_fen, "lines": status.line_count,
                  "reported": status.reported_count, "paid": status.paid_fen, "returned": status.returned_fen}
        differences = [name for name in ours if ours[name] != theirs[name]]
        recorded = {"paid": request.paid_fen, "returned": request.returned_fen}
        if recorded != {"paid": progress.paid_fen, "returned": progress.returned_fen}:
            differences.append("recorded")
        if not differences:
            request.reconcile()
            request.reconciled_at, request.reconcile_note = now, ""
            request.save()
            _trace(request, "fiscal.request.reconciled", actor=actor, now=now, amount_fen=request.paid_fen)
        else:
            request.reconcile_note = _reconcile_note(ours, theirs, recorded, differences)
            request.save(update_fields=["reconcile_note"])
            _trace(request, "fiscal.request.reconcile_failed", actor=actor, now=now, differences=differences,
                   ours=[ours[name] for name in ours], theirs=[theirs[name] for name in theirs],
                   recorded=[recorded["paid"], recorded["returned"]])
    return request


_RECONCILE_LABELS = {"state": "状态 state", "amount": "凭证金额 total", "lines": "笔数 lines",
                     "reported": "已回单笔数 reported", "paid": "已支付 paid", "returned": "已退回 returned"}


def _reconcile_note(ours: dict, theirs: dict, recorded: dict, differences: list[str]) -> str:
    """Each difference as `label: ours / theirs`, the figures in yuan."""
    shown = {"amount", "paid", "returned"}
    parts = []
    for name in differences:
        if name == "recorded":
            parts.append(f"本系统记录 recorded paid {format_yuan(recorded['paid'])} returned "
                         f"{format_yuan(recorded['returned'])} != 明细 lines")
            continue
        ours_text, theirs_text = ((format_yuan(ours[name]), format_yuan(theirs[name])) if name in shown
                                  else (ours[name], theirs[name]))
        parts.append(f"{_RECONCILE_LABELS[name]} {ours_text} / {theirs_text}")
    return ("不一致 (differs), 本系统 / 预算系统 (ours / budget system): " + "; ".join(parts))[:255]


def reconcile_reported_requests(*, now: datetime) -> dict[str, int]:
    """The daily task: reconcile every reported request; one that cannot be asked now waits for tomorrow."""
    counts = {"reconciled": 0, "differs": 0, "unavailable": 0}
    for request_id in PaymentRequest.objects.filter(state=R.REPORTED).values_list("pk", flat=True):
        try:
            state = reconcile_request(request_id=request_id, now=now).state
        except BudgetError:
            counts["unavailable"] += 1
            continue
        counts["reconciled" if state == R.RECONCILED else "differs"] += 1
    return counts
