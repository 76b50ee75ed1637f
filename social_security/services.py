"""Employers' monthly social-insurance declarations: prepare, declare, confirm, pay, reconcile.

Every public function is one business action, keyword-only, told `now` by its caller. Writes happen in one
transaction under a row lock on the declaration; calls to the tax system (TIPS) and the operator happen
after commit with no lock held (the money-moving pattern of ../DESIGN.md):

- `declare` records the intent (draft -> declared) and, after commit, `send_declaration` sends the 5101
  declaration; the tax system's 5102 answer confirms it (voucher number, confirmed total) or refuses it
  (rejected, with the reason). A send that got no answer is sent again by `resend_pending` under the same
  declaration number, which the tax system answers as it did the first time.
- `pay_declaration` creates one transfer (employer wallet -> the region's fund wallet) under the active
  three-party agreement, keyed `social:<declaration id>:<attempt>`; `finish_payment` (after the operator's
  answer; also the periodic `finish_paying_declarations`) moves paying -> paid, or back to confirmed with the
  operator's reason. A declaration is never paying twice at once, and an attempt's key is never reused, so
  a retry cannot pay twice; the failed transfer stays on record.
- after payment the 5103 payment notice goes to the tax system (an outbox: `payment_notified_at`).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from social_security import parsing, rules
from social_security.models import (
    INSURANCE_TYPES, OPEN_STATES, Declaration, DeclarationLine, DeclarationSource, FundAccount, Region,
)
from social_security.models import DeclarationState as S
from tax.models import AgreementState, TaxAgreement
from treasury import bulk, identifiers
from treasury.access import roles
from treasury.access.errors import AccessDenied
from treasury.access.makerchecker import ensure_can_approve
from treasury.access.scoping import user_organization
from treasury.models import NOT_PAID_STATES, Organization, Transfer, TransferState
from treasury.spreadsheets import ResidentIdChecker, compact_text
from treasury.services.transfers import NewTransfer, create_transfers
from treasury.trace.services import EventSpec, append_events

logger = logging.getLogger(__name__)

SUBJECT = "social.declaration"
PURPOSE_CODE = "SOCIALINS"
PREPARER_ROLES = (roles.EMPLOYER_OPERATOR,)
APPROVER_ROLES = (roles.EMPLOYER_APPROVER,)
# The premium message carries the period as (19|20)YYMM, in ASCII digits ([0-9]: \d also matches other scripts'
# digits, which int() reads); year 0000 is no date at all.
_PERIOD = re.compile(r"^((?:19|20)[0-9]{2})-(0[1-9]|1[0-2])$")
# The largest declared base taken, as a declaration file reads it (13 digits of yuan): the declared base is stored
# as typed beside the clamped one, and a larger number does not fit the column.
MAX_BASE_FEN = 10**15 - 1
LINE_COLUMNS = ["declaration_id", "line_no", "resident_id", "name", "declared_base_fen", "base_fen", "base_note",
                "pension_employer_fen", "pension_individual_fen", "medical_employer_fen", "medical_individual_fen",
                "unemployment_employer_fen", "unemployment_individual_fen", "work_injury_employer_fen",
                "work_injury_individual_fen", "employer_fen", "individual_fen", "total_fen", "payroll_line_id",
                "payroll_withheld_fen"]


class SocialError(Exception):
    """A clerk-readable refusal; `code` is for API clients."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Problem:
    line: int
    column: str
    code: str
    message: str


class DeclarationRefused(SocialError):
    """Lines with problems: every one listed (line, column, reason); nothing was stored."""

    def __init__(self, problems: list[Problem], *, file_problem_count: int | None = None):
        self.problems = problems
        count = file_problem_count if file_problem_count is not None else len(problems)
        super().__init__(f"{count} 处错误，未保存 ({count} problem(s); nothing was stored)", "lines_refused")


@dataclass(frozen=True)
class LineInput:
    """One employee as entered, imported or taken from payroll (base in fen, as declared)."""

    name: str
    resident_id: str
    base_fen: int
    line: int = 0  # as the clerk sees it (file line); 0 = numbered in order
    payroll_line_id: int | None = None
    payroll_withheld_fen: int | None = None


# ---------------------------------------------------------------------------------------------
# Access, locks, trace
# ---------------------------------------------------------------------------------------------


def _actor(user) -> str:
    return getattr(user, "username", "") or "system"


def _ensure_employer_user(user, employer: Organization, *, role_names: tuple[str, ...]) -> None:
    if roles.has_role(user, roles.ADMIN):
        return
    if user_organization(user) != employer:
        raise AccessDenied("不能操作其他单位的申报 (this declaration belongs to another organization)", code="not_found")
    if not roles.has_role(user, *role_names):
        raise AccessDenied("没有此操作的权限 (your role cannot do this)", code="role_required")


def _locked(declaration_id: int) -> Declaration:
    return Declaration.objects.select_for_update(of=("self",)).get(pk=declaration_id)


def _trace(declaration: Declaration, kind: str, *, actor: str, now: datetime, amount_fen: int | None = None,
           **data) -> None:
    append_events(stream_key=declaration.stream_key, now=now, events=[EventSpec(
        kind=kind, subject_type=SUBJECT, subject_id=str(declaration.pk), actor=actor, amount_fen=amount_fen,
        source_ref=declaration.declaration_no, data=data)])


def _tips():
    # Imported late: the adapter is configured (and may be replaced) separately from the domain.
    from adapters.tips.client import get_tips_client

    return get_tips_client()


# ---------------------------------------------------------------------------------------------
# Computing lines
# ---------------------------------------------------------------------------------------------


def fund_account(*, region: Region | str) -> FundAccount:
    """The region's fund account (its wallet and collecting tax authority).

    Raises SocialError `no_fund_account` when none is registered.
    """
    code = region.code if isinstance(region, Region) else region
    found = FundAccount.objects.select_related("region", "tax_authority", "wallet").filter(region__code=code).first()
    if found is None:
        raise SocialError(f"统筹地区 {code} 未登记社保基金收入户 (no fund account for region {code})",
                          "no_fund_account")
    return found


def _check_period(period: str) -> str:
    period = (period or "").strip()
    if not _PERIOD.match(period):
        raise SocialError("费款所属期应为YYYY-MM，如2026-03 (period must be YYYY-MM)", "period_format")
    return period


def _rules(region: Region, period: str) -> rules.Rules:
    year, month = period.split("-")
    try:
        return rules.rules_for(region=region, on=datetime(int(year), int(month), 1).date())
    except rules.RulesNotFound as exc:
        raise SocialError(str(exc), exc.code)


def _check_rows(rows: list[LineInput]) -> tuple[list[LineInput], list[Problem]]:
    """Rows with normalised IDs and names, and every problem of every row."""
    problems, checked, seen = [], [], {}
    check_resident_id = ResidentIdChecker()  # the foundation's validator, with its fast path for a month of IDs
    for index, row in enumerate(rows, start=1):
        line = row.line or index
        before = len(problems)
        name = " ".join(str(row.name or "").split())
        if not name:
            problems.append(Problem(line, "姓名", "required", "必填项为空 (required value is missing)"))
        elif len(name) > parsing.NAME_MAX_CHARS:
            problems.append(Problem(line, "姓名", "name_format", "姓名过长 (name is too long)"))
        resident_id = ""
        try:
            resident_id = check_resident_id(compact_text(str(row.resident_id or "")))[0]
        except identifiers.InvalidIdentifier as exc:
            problems.append(Problem(line, "身份证号", exc.code, str(exc)))
        else:
            if resident_id in seen:
                problems.append(Problem(line, "身份证号", "duplicate_resident_id",
                                        f"身份证号与第{seen[resident_id]}行重复 (resident ID repeats line {seen[resident_id]})"))
            seen.setdefault(resident_id, line)
        if type(row.base_fen) is not int or row.base_fen <= 0:
            problems.append(Problem(line, "缴费基数", "base_not_positive",
                                    "缴费基数必须为大于零的金额 (base must be an amount above zero)"))
        elif row.base_fen > MAX_BASE_FEN:
            problems.append(Problem(line, "缴费基数", "amount_too_large", "金额过大 (amount is too large)"))
        if len(problems) == before:
            checked.append(LineInput(name=name, resident_id=resident_id, base_fen=row.base_fen, line=line,
                                     payroll_line_id=row.payroll_line_id,
                                     payroll_withheld_fen=row.payroll_withheld_fen))
    return checked, problems


def compute_lines(*, rows: list[LineInput], rules_snapshot: rules.Rules, declaration_id: int,
                  first_line_no: int = 1, risk_class: int = rules.DEFAULT_RISK_CLASS) -> list[tuple]:
    """Database rows (LINE_COLUMNS order) of checked input rows: clamped bases, per-type amounts, work injury
    at the employer's risk class.

    Set-based: premiums are computed once per distinct counted base (a month's bases repeat: floor,
    ceiling, pay grades), then every row is a tuple for one bulk insert.
    """
    by_base: dict[int, tuple] = {}
    out = []
    for offset, row in enumerate(rows):
        base, note = rules.clamp_base(base_fen=row.base_fen, rules=rules_snapshot)
        amounts = by_base.get(base)
        if amounts is None:
            result = rules.premiums(base_fen=base, rules=rules_snapshot, kind=rules.EMPLOYEE, risk_class=risk_class)
            per_type = []
            for insurance_type in INSURANCE_TYPES:
                a = result.of(insurance_type)
                per_type += [a.employer_fen, a.individual_fen]
            amounts = by_base[base] = (*per_type, result.employer_fen, result.individual_fen, result.total_fen)
        out.append((declaration_id, first_line_no + offset, row.resident_id, row.name, row.base_fen, base, note,
                    *amounts, row.payroll_line_id, row.payroll_withheld_fen))
    return out


def _insert_lines(declaration: Declaration, line_rows: list[tuple]) -> None:
    bulk.insert_rows(table=DeclarationLine._meta.db_table, columns=LINE_COLUMNS, rows=line_rows)


def _refresh_totals(declaration: Declaration) -> None:
    """Totals from the lines, in one aggregate query (the lines are the truth)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), COALESCE(SUM(base_fen), 0), COALESCE(SUM(employer_fen), 0), "
            f"COALESCE(SUM(individual_fen), 0) FROM {DeclarationLine._meta.db_table} WHERE declaration_id = %s",
            [declaration.pk])
        # SUM of bigint is numeric (Decimal) on PostgreSQL: back to int fen.
        count, bases, employer, individual = (int(v) for v in cursor.fetchone())
    declaration.line_count, declaration.base_total_fen = count, bases
    declaration.employer_total_fen, declaration.individual_total_fen = employer, individual
    declaration.total_fen = employer + individual


# ---------------------------------------------------------------------------------------------
# Preparing (draft)
# ---------------------------------------------------------------------------------------------


def create_declaration(*, user, region_code: str, period: str, rows: list[LineInput], now: datetime,
                       source: str = DeclarationSource.ENTERED, payroll_batch=None) -> Declaration:
    """A draft declaration of the user's employer for a region and period, with its lines computed.

    All or nothing: every problem of every row is collected and raised together; nothing is stored then.
    An empty `rows` makes an empty draft (lines added one by one on the page).

    Raises:
        AccessDenied: not an employer operator (or an employer user without an organization).
        SocialError: `period_format`, `no_fund_account`, `social_rules_not_found`, `already_declared`.
        DeclarationRefused: line problems (`.problems`).
    """
    employer = user_organization(user)
    if employer is None or employer.org_type != Organization.Type.EMPLOYER:
        raise AccessDenied("只有用人单位可以申报 (only employers declare)", code="not_an_employer")
    _ensure_employer_user(user, employer, role_names=PREPARER_ROLES)
    period = _check_period(period)
    fund = fund_account(region=region_code)
    snapshot = _rules(fund.region, period)
    risk_class, class_set = rules.risk_class_for(employer=employer, region=fund.region, on=snapshot.on)
    try:
        snapshot.work_injury_rate(risk_class)
    except rules.RulesNotFound as exc:
        raise SocialError(str(exc), exc.code)
    checked, problems = _check_rows(rows)
    if problems:
        raise DeclarationRefused(problems)
    with transaction.atomic():
        if Declaration.objects.filter(employer=employer, region=fund.region, period=period,
                                      state__in=OPEN_STATES).exists():
            raise SocialError(f"{period} 已有申报，请修改或作废后再建 (a declaration for {period} exists)",
                              "already_declared")
        try:
            with transaction.atomic():
                declaration = Declaration.objects.create(
                    employer=employer, region=fund.region, tax_authority=fund.tax_authority, period=period,
                    source=source, payroll_batch=payroll_batch, prepared_by=user, created_at=now,
                    work_injury_class=risk_class, work_injury_class_set=class_set)
        except IntegrityError:
            # Another request (a second tab, a double click) made the month's declaration since the check above:
            # the one-open-declaration constraint refused this one.
            raise SocialError(f"{period} 已有申报，请修改或作废后再建 (a declaration for {period} exists)",
                              "already_declared") from None
        _insert_lines(declaration, compute_lines(rows=checked, rules_snapshot=snapshot, declaration_id=declaration.pk,
                                                 risk_class=risk_class))
        _refresh_totals(declaration)
        declaration.save()
        _trace(declaration, "social.declaration.prepared", actor=_actor(user), now=now,
               amount_fen=declaration.total_fen, period=period, source=source, lines=declaration.line_count)
    return declaration


def import_declaration_file(*, user, region_code: str, period: str, data, filename: str,
                            now: datetime) -> Declaration:
    """A draft declaration from a CSV/XLSX file (parsing.py). The file's header, when it names an employer
    or period, must agree with the user's employer and `period`.

    Raises:
        DeclarationRefused: every line problem (line, column, reason); nothing stored.
        parsing.DeclarationFileRefused: not a readable declaration file.
        as `create_declaration`.
    """
    parsed = parsing.parse_declaration_file(data, filename=filename)
    problems = [Problem(p.line, p.column, p.code, p.message) for p in parsed.problems]
    employer = user_organization(user)
    if parsed.employer_uscc and employer is not None and parsed.employer_uscc != employer.uscc:
        problems.insert(0, Problem(1, "单位统一社会信用代码", "employer_mismatch",
                                   "文件中的单位与当前单位不符 (the file names another employer)"))
    if parsed.period and parsed.period != (period or "").strip():
        problems.insert(0, Problem(1, "费款所属期", "period_mismatch",
                                   f"文件所属期 {parsed.period} 与申报所属期不符 (the file's period differs)"))
    if problems:
        raise DeclarationRefused(problems, file_problem_count=parsed.problem_count + len(problems) - len(parsed.problems))
    rows = [LineInput(name=r.name, resident_id=r.resident_id, base_fen=r.base_fen, line=r.line) for r in parsed.lines]
    if not rows:
        raise DeclarationRefused([Problem(1, "", "no_lines", "文件没有明细行 (the file has no lines)")])
    return create_declaration(user=user, region_code=region_code, period=period, rows=rows, now=now,
                              source=DeclarationSource.IMPORTED)


def declaration_from_payroll(*, user, payroll_batch_id: int, region_code: str, now: datetime) -> Declaration:
    """A draft declaration from a payroll batch of the same employer: one line per payroll line, its gross
    pay as the declared base (project choice: the month's gross stands in for last year's average), linked
    to the payroll line and to what it withheld as the individual's social insurance.

    Raises:
        SocialError: `payroll_not_found` (not this employer's batch), `payroll_not_ready` (not yet validated),
            as `create_declaration`.
    """
    from payroll.models import BatchState, PayrollBatch

    employer = user_organization(user)
    batch = PayrollBatch.objects.filter(pk=payroll_batch_id, employer=employer).first() if employer else None
    if batch is None:
        raise SocialError("没有此工资批次 (no such payroll batch of this employer)", "payroll_not_found")
    if batch.state in (BatchState.UPLOADED, BatchState.REJECTED, BatchState.CANCELLED):
        raise SocialError("工资批次未通过校验或已作废 (the payroll batch is not valid)", "payroll_not_ready")
    rows = [LineInput(name=name, resident_id=resident_id, base_fen=gross, line=line_no, payroll_line_id=pk,
                      payroll_withheld_fen=int((deductions or {}).get("social_insurance", 0)))
            for pk, line_no, name, resident_id, gross, deductions in
            batch.lines.order_by("line_no").values_list("pk", "line_no", "name", "resident_id", "gross_fen",
                                                        "deductions")]
    return create_declaration(user=user, region_code=region_code, period=batch.period, rows=rows, now=now,
                              source=DeclarationSource.PAYROLL, payroll_batch=batch)


def _draft_for_change(declaration_id: int, user) -> Declaration:
    """The draft, locked, if `user` may change its lines: only its preparer (maker-checker: `declare` refuses
    the preparer, so someone who also approves could otherwise put lines in another person's draft and
    declare them alone; an administrator is no exception)."""
    declaration = _locked(declaration_id)
    _ensure_employer_user(user, declaration.employer, role_names=PREPARER_ROLES)
    if declaration.prepared_by_id != user.pk:
        raise AccessDenied("只有申报的经办人可以修改明细 (only the person who prepared the declaration changes its "
                           "lines)", code="not_preparer")
    if declaration.state != S.DRAFT:
        raise SocialError("只能修改草稿 (only a draft can be changed)", "not_draft")
    return declaration


def add_line(*, declaration_id: int, user, name: str, resident_id: str, base_fen: int, now: datetime) -> Declaration:
    """Add one employee to a draft (entered on the page).

    Raises: DeclarationRefused (the line's problems, or the person is already in it), SocialError `not_draft`,
    AccessDenied `not_preparer` (someone other than the preparer).
    """
    with transaction.atomic():
        declaration = _draft_for_change(declaration_id, user)
        checked, problems = _check_rows([LineInput(name=name, resident_id=resident_id, base_fen=base_fen, line=1)])
        if checked and declaration.lines.filter(resident_id=checked[0].resident_id).exists():
            problems.append(Problem(1, "身份证号", "duplicate_resident_id", "此人已在申报中 (already in this declaration)"))
        if problems:
            raise DeclarationRefused(problems)
        last = declaration.lines.order_by("-line_no").values_list("line_no", flat=True).first() or 0
        _insert_lines(declaration, compute_lines(rows=checked, rules_snapshot=_rules(declaration.region, declaration.period),
                                                 declaration_id=declaration.pk, first_line_no=last + 1,
                                                 risk_class=declaration.work_injury_class))
        _refresh_totals(declaration)
        declaration.save()
        _trace(declaration, "social.declaration.line_added", actor=_actor(user), now=now,
               amount_fen=declaration.total_fen, line=last + 1)
    return declaration


def remove_line(*, declaration_id: int, user, line_id: int, now: datetime) -> Declaration:
    """Remove one employee from a draft (its preparer only). Raises SocialError `not_draft`, `line_not_found`,
    AccessDenied `not_preparer`."""
    with transaction.atomic():
        declaration = _draft_for_change(declaration_id, user)
        deleted, _ = declaration.lines.filter(pk=line_id).delete()
        if not deleted:
            raise SocialError("没有此明细行 (no such line)", "line_not_found")
        _refresh_totals(declaration)
        declaration.save()
        _trace(declaration, "social.declaration.line_removed", actor=_actor(user), now=now,
               amount_fen=declaration.total_fen, line_id=line_id)
    return declaration


def cancel_declaration(*, declaration_id: int, user, reason: str, now: datetime) -> Declaration:
    """作废 a draft or rejected declaration. Raises SocialError `not_cancellable`, `reason_required`."""
    reason = (reason or "").strip()
    if not reason:
        raise SocialError("请填写作废原因 (a reason is required)", "reason_required")
    with transaction.atomic():
        declaration = _locked(declaration_id)
        _ensure_employer_user(user, declaration.employer, role_names=PREPARER_ROLES + APPROVER_ROLES)
        if declaration.state not in (S.DRAFT, S.REJECTED):
            raise SocialError("只能作废草稿或被退回的申报 (only a draft or rejected declaration can be cancelled)",
                              "not_cancellable")
        declaration.cancel()
        declaration.state_reason = reason[:255]
        declaration.save()
        _trace(declaration, "social.declaration.cancelled", actor=_actor(user), now=now, reason=reason)
    return declaration


def reopen_declaration(*, declaration_id: int, user, now: datetime) -> Declaration:
    """A declaration the authority rejected goes back to draft for a fix (the reason stays shown)."""
    with transaction.atomic():
        declaration = _locked(declaration_id)
        _ensure_employer_user(user, declaration.employer, role_names=PREPARER_ROLES)
        if declaration.state != S.REJECTED:
            raise SocialError("只有被退回的申报可以重新编辑 (only a rejected declaration can be reopened)", "not_rejected")
        declaration.reopen()
        declaration.save()
        _trace(declaration, "social.declaration.reopened", actor=_actor(user), now=now)
    return declaration


# ---------------------------------------------------------------------------------------------
# Declaring to the tax system (5101 -> 5102)
# ---------------------------------------------------------------------------------------------


def declare(*, declaration_id: int, user, now: datetime) -> Declaration:
    """申报: an employer approver (never the preparer) sends the draft to the tax system. The state changes
    now; the 5101 goes after commit (`send_declaration`) and again from the sweep until answered.

    Raises: AccessDenied / MakerCheckerViolation, SocialError `not_draft`, `no_lines`.
    """
    with transaction.atomic():
        declaration = _locked(declaration_id)
        _ensure_employer_user(user, declaration.employer, role_names=APPROVER_ROLES)
        ensure_can_approve(approver=user, prepared_by_id=declaration.prepared_by_id,
                           approver_roles=APPROVER_ROLES + (roles.ADMIN,))
        if declaration.state != S.DRAFT:
            raise SocialError("只能申报草稿 (only a draft can be declared)", "not_draft")
        if declaration.line_count == 0:
            raise SocialError("申报没有明细 (the declaration has no lines)", "no_lines")
        declaration.declare()
        declaration.declared_by, declaration.declared_at, declaration.state_reason = user, now, ""
        declaration.save()
        _trace(declaration, "social.declaration.declared", actor=_actor(user), now=now,
               amount_fen=declaration.total_fen, lines=declaration.line_count)
        transaction.on_commit(partial(_enqueue_send, declaration.pk))
    return declaration


def _enqueue_send(declaration_id: int) -> None:
    from social_security.tasks import send_declaration_task

    send_declaration_task.apply_async(kwargs={"declaration_id": declaration_id})


def declaration_message(*, declaration: Declaration):
    """The 5101 document's content for a declaration (per-type totals; persons counted, not listed)."""
    from adapters.tips.interface import SocialDeclaration, SocialDeclarationType

    sums = {}
    for insurance_type in INSURANCE_TYPES:
        column = insurance_type.value
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COALESCE(SUM({column}_employer_fen), 0), COALESCE(SUM({column}_individual_fen), 0) "
                f"FROM {DeclarationLine._meta.db_table} WHERE declaration_id = %s", [declaration.pk])
            sums[column] = [int(v) for v in cursor.fetchone()]
    return SocialDeclaration(
        tax_org_code=declaration.tax_authority.code, decl_no=declaration.declaration_no,
        payer_code=declaration.employer.uscc, payer_name=declaration.employer.name,
        region_code=declaration.region.code, period=declaration.period.replace("-", ""),
        person_num=declaration.line_count, base_amount_fen=declaration.base_total_fen,
        employer_amount_fen=declaration.employer_total_fen, individual_amount_fen=declaration.individual_total_fen,
        all_amount_fen=declaration.total_fen,
        types=tuple(SocialDeclarationType(ins_type=t.value, employer_amount_fen=sums[t.value][0],
                                          individual_amount_fen=sums[t.value][1]) for t in INSURANCE_TYPES))


def send_declaration(*, declaration_id: int, now: datetime) -> Declaration:
    """Send a declared declaration's 5101 and record the answer: confirmed (voucher number, confirmed total)
    or rejected (the authority's reason). No lock is held while the tax system is asked; a declaration no
    longer `declared` is left as it is. When the tax system cannot be reached it stays declared for the sweep.
    """
    from adapters.tips.interface import ResultCode, TipsError

    declaration = Declaration.objects.select_related("tax_authority", "employer", "region").get(pk=declaration_id)
    if declaration.state != S.DECLARED:
        return declaration
    try:
        reply = _tips().send_social_declaration(declaration_message(declaration=declaration))
    except TipsError as exc:
        logger.warning("social declaration %s not answered: %s", declaration.declaration_no, exc)
        return declaration
    with transaction.atomic():
        declaration = _locked(declaration_id)
        if declaration.state != S.DECLARED:
            return declaration
        if reply.result == ResultCode.SUCCESS:
            declaration.confirm()
            declaration.voucher_no, declaration.confirmed_total_fen = reply.vou_no, reply.confirmed_amount_fen
            declaration.confirmed_at, declaration.state_reason = now, ""
            kind = "social.declaration.confirmed"
        else:
            declaration.reject()
            declaration.state_reason = f"{reply.result} {reply.add_word}".strip()[:255]
            kind = "social.declaration.rejected"
        declaration.save()
        _trace(declaration, kind, actor="tax_system", now=now, amount_fen=reply.confirmed_amount_fen or None,
               result=reply.result, voucher_no=reply.vou_no, note=reply.add_word)
    return declaration


# ---------------------------------------------------------------------------------------------
# Paying
# ---------------------------------------------------------------------------------------------


def active_agreement(*, declaration: Declaration) -> TaxAgreement | None:
    """The employer's active three-party agreement with the collecting tax authority (its wallet pays)."""
    return (TaxAgreement.objects.select_related("wallet")
            .filter(tax_org_code=declaration.tax_authority.code, taxpayer_id=declaration.employer.uscc,
                    wallet__holder_org=declaration.employer, state=AgreementState.ACTIVE)
            .order_by("pk").first())


def pay_declaration(*, declaration_id: int, user, now: datetime) -> Declaration:
    """缴费: an employer approver (never the preparer) pays a confirmed declaration's confirmed total from the
    employer's wallet under its active agreement into the region's fund wallet: one transfer, submitted
    after commit. Paying again after a failure is a new attempt with a new key; a declaration already
    paying or paid is refused, so the same month is never collected twice.

    Raises: AccessDenied / MakerCheckerViolation, SocialError `not_payable`, `no_agreement`, `no_fund_account`;
    treasury InvalidTransfers (e.g. a wallet not active; nothing written).
    """
    with transaction.atomic():
        declaration = _locked(declaration_id)
        _ensure_employer_user(user, declaration.employer, role_names=APPROVER_ROLES)
        ensure_can_approve(approver=user, prepared_by_id=declaration.prepared_by_id,
                           approver_roles=APPROVER_ROLES + (roles.ADMIN,))
        if declaration.state != S.CONFIRMED:
            raise SocialError("只能为已确认且未在缴费中的申报缴费 (only a confirmed declaration not being paid can be paid)",
                              "not_payable")
        agreement = active_agreement(declaration=declaration)
        if agreement is None:
            raise SocialError("未与征收税务机关签订有效的三方协议 (no active three-party agreement with the "
                              "collecting tax authority)", "no_agreement")
        fund = fund_account(region=declaration.region)
        declaration.payment_attempts += 1
        (transfer_id,) = create_transfers(
            organization_id=declaration.employer_id, batch_ref=f"social-{declaration.pk}", actor=_actor(user),
            now=now, transfers=[NewTransfer(
                payer_id=agreement.wallet_id, payee_id=fund.wallet_id, amount_fen=declaration.confirmed_total_fen,
                idempotency_key=f"social:{declaration.pk}:{declaration.payment_attempts}",
                purpose_code=PURPOSE_CODE, memo=f"{declaration.period} 社会保险费 {declaration.voucher_no}",
                source_type_id=ContentType.objects.get_for_model(Declaration).pk, source_id=declaration.pk,
                source_ref=f"{declaration.declaration_no} voucher {declaration.voucher_no}")])
        declaration.start_payment()
        declaration.transfer_id, declaration.agreement, declaration.payer_wallet = transfer_id, agreement, agreement.wallet
        declaration.paid_by, declaration.state_reason = user, ""
        declaration.save()
        _trace(declaration, "social.declaration.payment_started", actor=_actor(user), now=now,
               amount_fen=declaration.confirmed_total_fen, transfer=transfer_id, attempt=declaration.payment_attempts,
               protocol_no=agreement.protocol_no)
    return declaration


def finish_payment(*, declaration_id: int, now: datetime) -> Declaration:
    """Record the operator's answer on a paying declaration: settled -> paid (the payment notice queued);
    failed or cancelled, or settled and come back already (returned, reversed: the fund does not hold it) ->
    confirmed with the reason (ready to pay again, under a new key). Still open: nothing changes. Money that comes
    back after the declaration is paid is found by reconciliation (a case, and a collection under the agreement)."""
    with transaction.atomic():
        declaration = _locked(declaration_id)
        if declaration.state != S.PAYING:
            return declaration
        transfer = Transfer.objects.get(pk=declaration.transfer_id)
        if transfer.state == TransferState.SETTLED:
            declaration.settle()
            declaration.paid_at = now
            declaration.save()
            _trace(declaration, "social.declaration.paid", actor="operator", now=now, amount_fen=transfer.amount_fen,
                   transfer=transfer.pk, operator_txn_id=transfer.operator_txn_id)
            transaction.on_commit(partial(_enqueue_notice, declaration.pk))
        elif transfer.state in NOT_PAID_STATES:
            declaration.payment_failed()
            why = f"{transfer.failure_code} {transfer.failure_message}".strip() or (
                f"缴费款已退回 (the payment came back): {transfer.get_state_display()}"
                if transfer.state in (TransferState.RETURNED, TransferState.REVERSED) else "")
            declaration.state_reason = f"缴费失败 (payment failed): {why}".strip()[:255]
            declaration.save()
            _trace(declaration, "social.declaration.payment_failed", actor="operator", now=now,
                   amount_fen=transfer.amount_fen, transfer=transfer.pk, code=transfer.failure_code,
                   message=transfer.failure_message)
    return declaration


def finish_paying_declarations(*, now: datetime) -> int:
    """Finish every paying declaration whose transfer the operator decided (the periodic task)."""
    finished = 0
    paying = (Declaration.objects.filter(state=S.PAYING)
              .exclude(transfer__state__in=[TransferState.PENDING, TransferState.SUBMITTED, TransferState.UNKNOWN])
              .values_list("pk", flat=True))
    for declaration_id in list(paying):
        finished += finish_payment(declaration_id=declaration_id, now=now).state != S.PAYING
    return finished


def _enqueue_notice(declaration_id: int) -> None:
    from social_security.tasks import notify_payment_task

    notify_payment_task.apply_async(kwargs={"declaration_id": declaration_id})


def notify_payment(*, declaration_id: int, now: datetime) -> Declaration:
    """Send the 5103 payment notice of a paid declaration (outbox): marked sent when the tax system
    acknowledges it (90000, or 94051 for one it already has). Unreachable: left for the sweep."""
    from adapters.tips.interface import ResultCode, SocialPayment, TipsError

    declaration = Declaration.objects.select_related("tax_authority", "transfer", "payer_wallet").get(pk=declaration_id)
    if declaration.state not in (S.PAID, S.RECONCILED) or declaration.payment_notified_at is not None:
        return declaration
    transfer = declaration.transfer
    message = SocialPayment(tax_org_code=declaration.tax_authority.code, decl_no=declaration.declaration_no,
                            vou_no=declaration.voucher_no, pay_acct=declaration.payer_wallet.wallet_id,
                            amount_fen=transfer.amount_fen, pay_date=timezone.localtime(transfer.settled_at or now).date(),
                            pay_serial=transfer.idempotency_key)
    try:
        ack = _tips().send_social_payment(message)
    except TipsError as exc:
        logger.warning("social payment notice %s not acknowledged: %s", declaration.declaration_no, exc)
        return declaration
    if ack.result not in (ResultCode.SUCCESS, ResultCode.DUPLICATE):
        logger.warning("social payment notice %s answered %s %s", declaration.declaration_no, ack.result, ack.add_word)
        return declaration
    with transaction.atomic():
        declaration = _locked(declaration_id)
        if declaration.payment_notified_at is None:
            declaration.payment_notified_at = now
            declaration.save(update_fields=["payment_notified_at"])
            _trace(declaration, "social.declaration.payment_notified", actor="system", now=now, result=ack.result)
    return declaration


def resend_pending(*, now: datetime) -> dict[str, int]:
    """The sweep: declarations still waiting for the tax system's answer and payment notices not yet
    acknowledged (employers' 5103 and flexible payers' 5104) are sent again (the tax system dedupes them on
    the declaration or payment number)."""
    from social_security.flexible.services import notify_pending_payments

    sent = {"declarations": 0, "notices": 0}
    for declaration_id in list(Declaration.objects.filter(state=S.DECLARED).values_list("pk", flat=True)):
        sent["declarations"] += send_declaration(declaration_id=declaration_id, now=now).state != S.DECLARED
    for declaration_id in list(Declaration.objects.filter(state__in=[S.PAID, S.RECONCILED],
                                                          payment_notified_at__isnull=True).values_list("pk", flat=True)):
        sent["notices"] += notify_payment(declaration_id=declaration_id, now=now).payment_notified_at is not None
    sent["flexible_notices"] = notify_pending_payments(now=now)
    return sent


def withheld_differences(*, declaration: Declaration):
    """Lines whose payroll withholding differs from the computed individual share."""
    return (declaration.lines.filter(payroll_withheld_fen__isnull=False)
            .exclude(payroll_withheld_fen=F("individual_fen")).order_by("line_no"))
