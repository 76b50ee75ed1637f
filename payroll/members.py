"""Union members (工会会员): added, edited, deactivated and reactivated one at a time, or imported from a CSV file,
by the operators of the union or of its employer.

- Members are never deleted: their dues (DuesCall) refer to them. A deactivated member pays no dues and is
  left out of the payroll run's remittance and the monthly call; reactivating brings them back.
- A member's resident ID is checked with python-stdnum (treasury.identifiers) and is their identity in the
  union (one member per resident ID): it is not edited. The wallet is checked with the operator, as the
  payroll upload checks it: it exists, is active, and its holder's name is the member's.
- An import is all or nothing: every line is checked, every problem is reported with its line and column,
  and nothing is written while any line is wrong.
- Every change is a trace event on the union's member stream (`union-<id>-members`), personal data masked.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import datetime

from django.db import IntegrityError, transaction

from treasury.access import roles
from treasury.access.errors import AccessDenied
from treasury.access.scoping import user_organization
from treasury.identifiers import (
    InvalidIdentifier, mask_name, mask_resident_id, mask_wallet_id, validate_resident_id, validate_wallet_id,
)
from treasury.money import InvalidAmount, yuan_to_fen
from treasury.services.wallets import verify_wallets
from treasury.spreadsheets import CONTROL_CHARACTER, is_utf16_or_32, refuse_utf16
from treasury.spreadsheets import MESSAGES as _SHEET_MESSAGES
from treasury.trace.services import EventSpec, append_events

from .models import UnionMember, UnionSettings
from .services import PayrollError

# The import file's columns, in the template's order: (field, header).
COLUMNS = (
    ("employee_no", "工号"),
    ("name", "姓名"),
    ("resident_id", "身份证号"),
    ("wallet_id", "钱包编号"),
    ("dues_base", "会费基数"),
    ("standing_authorisation", "代扣授权"),
)
HEADERS = dict(COLUMNS)
FIELD_ORDER = {field: index for index, (field, _) in enumerate(COLUMNS)}
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_LINES = 50_000
MAX_PROBLEMS_SHOWN = 1_000  # on the import page; the count says how many in all
FORMULA_START = ("=", "+", "-", "@")  # a cell starting so would run as a formula in a spreadsheet
# 13 digits of yuan, as payroll files are read: a larger number overflowed the column (a server error).
MAX_DUES_BASE_FEN = 10**15 - 1
CONTROL_CHARACTER_MESSAGE = _SHEET_MESSAGES["control_character"]
YES = {"是", "y", "yes", "1", "true", "已授权"}
NO = {"", "否", "n", "no", "0", "false", "未授权"}


@dataclass(frozen=True)
class MemberProblem:
    line: int  # the file's line as a spreadsheet shows it (header = 1); 0 for a form
    field: str  # employee_no, name, resident_id, wallet_id, dues_base, standing_authorisation, or "" (the file)
    code: str
    message: str

    @property
    def column(self) -> str:
        return HEADERS.get(self.field, "")


class MembersRefused(PayrollError):
    """Nothing was written: `problems` says why, line by line and column by column."""

    def __init__(self, problems: list[MemberProblem]):
        shown = "; ".join(p.message for p in problems[:3])
        super().__init__(f"会员信息有 {len(problems)} 处问题 ({len(problems)} problem(s)): {shown}", "member_invalid")
        self.problems = problems


@dataclass(frozen=True)
class MemberDetails:
    """What an operator types about a member; `resident_id` is only read when adding."""

    name: str
    wallet_id: str
    dues_base_fen: int = 0
    standing_authorisation: bool = False
    employee_no: str = ""
    resident_id: str = ""


# ---------------------------------------------------------------------------------------------
# Who may change members
# ---------------------------------------------------------------------------------------------


def may_edit_members(*, user, union: UnionSettings) -> bool:
    """The operators of the union or of its employer; approvers, auditors and administrators only read."""
    org = user_organization(user)
    return (
        not roles.is_read_only(user)
        and roles.has_role(user, roles.EMPLOYER_OPERATOR)
        and org is not None
        and org.pk in (union.union_id, union.employer_id)
    )


def _ensure_may_edit(user, union: UnionSettings) -> None:
    if not may_edit_members(user=user, union=union):
        raise AccessDenied("只有工会或本单位的经办人员可以维护会员 (only the union's or the employer's operators "
                           "manage members)", code="role_required")


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


def _clean_text(value: str) -> str:
    return " ".join(str(value or "").replace("\u3000", " ").split())


def _check_details(details: MemberDetails, *, line: int, adding: bool) -> tuple[MemberDetails, list[MemberProblem]]:
    """Normalise what was typed and list what is wrong with it (no database, no operator)."""
    problems = []

    def problem(field, code, message):
        problems.append(MemberProblem(line, field, code, message))

    employee_no = _clean_text(details.employee_no)
    if len(employee_no) > 32 or employee_no.startswith(FORMULA_START):
        problem("employee_no", "employee_no_format", "工号最多32个字符，不能以 = + - @ 开头 (employee no.: at most 32 "
                                                     "characters, not starting with = + - @)")
    elif not employee_no.isprintable() and CONTROL_CHARACTER.search(employee_no):
        problem("employee_no", "control_character", CONTROL_CHARACTER_MESSAGE)
    name = _clean_text(details.name)
    if not name:
        problem("name", "required", "请填写姓名 (the name is required)")
    elif len(name) > 64 or name.startswith(FORMULA_START) or any(c.isdigit() for c in name):
        problem("name", "name_format", "姓名格式无效 (name is not a valid name)")
    elif not name.isprintable() and CONTROL_CHARACTER.search(name):
        # Else the operator's holder check refused it as another person's name.
        problem("name", "control_character", CONTROL_CHARACTER_MESSAGE)
    resident_id = ""
    if adding:
        try:
            resident_id = validate_resident_id(details.resident_id).number
        except InvalidIdentifier as exc:
            problem("resident_id", exc.code, str(exc))
    wallet_id = ""
    try:
        wallet_id = validate_wallet_id(details.wallet_id)
    except InvalidIdentifier as exc:
        problem("wallet_id", exc.code, str(exc))
    if details.dues_base_fen < 0:
        problem("dues_base", "amount_negative", "会费基数不能为负 (the dues base must not be negative)")
    elif details.dues_base_fen > MAX_DUES_BASE_FEN:
        problem("dues_base", "amount_too_large", "会费基数过大 (the dues base is too large)")
    cleaned = MemberDetails(name=name, wallet_id=wallet_id, dues_base_fen=details.dues_base_fen,
                            standing_authorisation=details.standing_authorisation, employee_no=employee_no,
                            resident_id=resident_id)
    return cleaned, problems


def _check_wallets(items: list[tuple[int, MemberDetails]]) -> list[MemberProblem]:
    """Ask the operator about every wallet at once (one call per 1,000): exists, active, holder's name."""
    checks = verify_wallets(pairs=[(details.wallet_id, details.name) for _, details in items])
    problems = []
    for (line, _), check in zip(items, checks):
        if not check.exists:
            problems.append(MemberProblem(line, "wallet_id", "wallet_unknown",
                                          "运营机构查无此钱包 (the operator has no such wallet)"))
        elif not check.active:
            problems.append(MemberProblem(line, "wallet_id", "wallet_inactive",
                                          "钱包已冻结或注销 (the wallet is frozen or closed)"))
        elif not check.holder_name_matches:
            problems.append(MemberProblem(line, "name", "holder_mismatch",
                                          "姓名与钱包户名不一致 (name does not match the wallet holder)"))
    return problems


def _check_not_taken(union: UnionSettings, items: list[tuple[int, MemberDetails]], *,
                     except_member: int | None = None) -> list[MemberProblem]:
    """A resident ID or an employee number already used by another member of this union."""
    others = union.members.exclude(pk=except_member) if except_member else union.members.all()
    resident_ids = {d.resident_id for _, d in items if d.resident_id}
    employee_nos = {d.employee_no for _, d in items if d.employee_no}
    taken_ids = set(others.filter(resident_id__in=resident_ids).values_list("resident_id", flat=True))
    taken_nos = set(others.filter(employee_no__in=employee_nos).values_list("employee_no", flat=True))
    problems = []
    for line, details in items:
        if details.resident_id in taken_ids:
            problems.append(MemberProblem(line, "resident_id", "already_member",
                                          "此身份证号已是本工会会员 (already a member of this union)"))
        if details.employee_no in taken_nos:
            problems.append(MemberProblem(line, "employee_no", "employee_no_taken",
                                          "此工号已有会员使用 (another member has this employee no.)"))
    return problems


# ---------------------------------------------------------------------------------------------
# The trace
# ---------------------------------------------------------------------------------------------


def _masked(details: dict) -> dict:
    """A member's details as the trace keeps them: name, resident ID and wallet masked."""
    masks = {"name": mask_name, "resident_id": mask_resident_id, "wallet_id": mask_wallet_id}
    return {key: masks[key](value) if key in masks else value for key, value in details.items()}


def _trace(union: UnionSettings, events: list[tuple[str, UnionMember, dict]], *, actor: str, now: datetime) -> None:
    append_events(
        stream_key=f"union-{union.pk}-members",
        events=[EventSpec(kind=f"payroll.union_member.{kind}", subject_type="payroll.union_member",
                          subject_id=str(member.pk), actor=actor, source_ref=f"union {union.pk}", data=_masked(data))
                for kind, member, data in events],
        now=now,
    )


def _member_fields(member: UnionMember) -> dict:
    return {"employee_no": member.employee_no, "name": member.name, "resident_id": member.resident_id,
            "wallet_id": member.wallet_id, "dues_base_fen": member.dues_base_fen,
            "standing_authorisation": member.standing_authorisation}


# ---------------------------------------------------------------------------------------------
# One member
# ---------------------------------------------------------------------------------------------


def add_member(*, union_id: int, user, details: MemberDetails, now: datetime) -> UnionMember:
    """Add a member (active). Checks the identifiers, that the resident ID and employee number are not
    another member's, and the wallet with the operator (before any write: no lock is held while asking).

    Raises:
        AccessDenied: role_required (not an operator of the union or its employer).
        MembersRefused: every problem found, by field (line 0).
    """
    union = UnionSettings.objects.get(pk=union_id)
    _ensure_may_edit(user, union)
    details, problems = _check_details(details, line=0, adding=True)
    if not problems:
        problems = _check_not_taken(union, [(0, details)]) or _check_wallets([(0, details)])
    if problems:
        raise MembersRefused(problems)
    try:
        with transaction.atomic():
            fields = asdict(details)
            member = UnionMember.objects.create(union=union, **fields, active=True)
            _trace(union, [("added", member, fields)], actor=user.username, now=now)
    except IntegrityError:  # the same person added by someone else at the same moment
        raise MembersRefused([MemberProblem(0, "resident_id", "already_member",
                                            "此身份证号已是本工会会员 (already a member of this union)")])
    return member


def update_member(*, member_id: int, user, details: MemberDetails, now: datetime) -> UnionMember:
    """Change a member's name, employee number, wallet, dues base and standing authorisation (not the
    resident ID). A new name or wallet is checked with the operator. Only what changed is traced.

    Raises:
        AccessDenied: role_required.
        MembersRefused: every problem found, by field (line 0).
    """
    member = UnionMember.objects.select_related("union").get(pk=member_id)
    _ensure_may_edit(user, member.union)
    details, problems = _check_details(details, line=0, adding=False)
    details = MemberDetails(**{**asdict(details), "resident_id": member.resident_id})
    if not problems:
        problems = _check_not_taken(member.union, [(0, details)], except_member=member.pk)
    if not problems and (details.name, details.wallet_id) != (member.name, member.wallet_id):
        problems = _check_wallets([(0, details)])
    if problems:
        raise MembersRefused(problems)
    with transaction.atomic():
        member = UnionMember.objects.select_for_update().select_related("union").get(pk=member_id)
        before = _member_fields(member)
        after = {**before, **{k: v for k, v in asdict(details).items() if k != "resident_id"}}
        changed = {key: value for key, value in after.items() if before[key] != value}
        if not changed:
            return member
        for key, value in changed.items():
            setattr(member, key, value)
        member.save(update_fields=list(changed))
        _trace(member.union, [("changed", member, changed)], actor=user.username, now=now)
    return member


def set_member_active(*, member_id: int, user, active: bool, now: datetime) -> UnionMember:
    """Deactivate (no more dues, not in the payroll remittance or the monthly call) or reactivate a
    member. Members are never deleted: their dues refer to them. Doing it twice changes nothing.

    Raises:
        AccessDenied: role_required.
    """
    with transaction.atomic():
        member = UnionMember.objects.select_for_update().select_related("union").get(pk=member_id)
        _ensure_may_edit(user, member.union)
        if member.active == active:
            return member
        member.active = active
        member.save(update_fields=["active"])
        _trace(member.union, [("reactivated" if active else "deactivated", member, {})], actor=user.username, now=now)
    return member


# ---------------------------------------------------------------------------------------------
# Import from CSV
# ---------------------------------------------------------------------------------------------


def members_template_csv() -> bytes:
    """The import file's header row and one example line, UTF-8 with BOM (Excel opens it right)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([header for _, header in COLUMNS])
    writer.writerow(["E0001", "张三", "11010519491231002X", "1001234567890123", "8000.00", "是"])
    return out.getvalue().encode("utf-8-sig")


def _decode(data: bytes) -> str:
    if is_utf16_or_32(data[:4]):
        raise MembersRefused([MemberProblem(0, "", "encoding", str(refuse_utf16()))])
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise MembersRefused([MemberProblem(0, "", "encoding", "文件应为 UTF-8 或 GBK 编码的 CSV (the file must be a CSV "
                                                           "in UTF-8 or GBK)")])


def read_members_csv(data: bytes) -> tuple[list[tuple[int, MemberDetails]], list[MemberProblem]]:
    """The lines of a member file (line numbers as a spreadsheet shows them) and every problem of their
    values. Blank lines are skipped. No database, no operator.

    Raises:
        MembersRefused: the file as a whole is unusable (too large, not text, no header row, columns missing).
    """
    if len(data) > MAX_FILE_BYTES:
        raise MembersRefused([MemberProblem(0, "", "file_too_large", "文件不能超过 5 MB (the file must be at most 5 MB)")])
    reader = csv.reader(io.StringIO(_decode(data), newline=""))
    rows, line = [], 1  # the line the record being read starts on
    try:
        for row in reader:
            rows.append(row)
            line = reader.line_num + 1
    except csv.Error as exc:  # e.g. a quote never closed, read on to a field past the csv module's size limit
        raise MembersRefused([MemberProblem(line, "", "malformed_csv", f"CSV 文件格式有误，第{line}行附近 "
                                                                       f"(the CSV file is malformed near line {line}: {exc})")])
    for line, row in enumerate(rows if b"\x00" in data else (), start=1):  # no text column can store a NUL
        if any("\x00" in cell for cell in row):
            raise MembersRefused([MemberProblem(line, "", "not_text", f"第{line}行含有空字符(NUL)，文件不是文本 "
                                                                      f"(line {line} holds a NUL character: not text)")])
    header = [_clean_text(cell) for cell in rows[0]] if rows else []
    missing = [MemberProblem(1, field, "column_missing", f"缺少“{name}”列 (the column {name} is missing)")
               for field, name in COLUMNS if name not in header]
    if missing:
        raise MembersRefused(missing)
    if len(rows) - 1 > MAX_LINES:
        raise MembersRefused([MemberProblem(0, "", "too_many_rows",
                                            f"一次最多导入 {MAX_LINES} 名会员 (at most {MAX_LINES} members a file)")])
    position = {name: header.index(name) for _, name in COLUMNS}
    items, problems = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = {field: row[position[name]].strip() if position[name] < len(row) else "" for field, name in COLUMNS}
        line_problems = []
        try:
            dues_base_fen = yuan_to_fen(cells["dues_base"] or "0")
        except InvalidAmount as exc:
            dues_base_fen = 0
            line_problems.append(MemberProblem(line, "dues_base", "amount_format", str(exc)))
        authorised = cells["standing_authorisation"].lower()
        if authorised not in YES | NO:
            line_problems.append(MemberProblem(line, "standing_authorisation", "authorisation_format",
                                               "代扣授权请填“是”或“否” (standing authorisation: 是 or 否)"))
        details, found = _check_details(
            MemberDetails(name=cells["name"], wallet_id=cells["wallet_id"], dues_base_fen=dues_base_fen,
                          standing_authorisation=authorised in YES, employee_no=cells["employee_no"],
                          resident_id=cells["resident_id"]),
            line=line, adding=True,
        )
        problems += line_problems + found
        items.append((line, details))
    problems += _duplicates_in_file(items)
    return items, problems


def _duplicates_in_file(items: list[tuple[int, MemberDetails]]) -> list[MemberProblem]:
    problems = []
    for field, what in (("resident_id", "身份证号 (resident ID)"), ("employee_no", "工号 (employee no.)")):
        first: dict[str, int] = {}
        for line, details in items:
            value = getattr(details, field)
            if not value:
                continue
            if value in first:
                problems.append(MemberProblem(line, field, f"duplicate_{field}",
                                              f"与第{first[value]}行{what}重复 (repeats line {first[value]})"))
            else:
                first[value] = line
    return problems


def import_members(*, union_id: int, user, data: bytes, now: datetime) -> list[UnionMember]:
    """Add every member of a CSV file (columns 工号, 姓名, 身份证号, 钱包编号, 会费基数, 代扣授权), or none.

    Every line is checked (identifiers, amounts, duplicates in the file and against the union's members,
    then every wallet with the operator, 1,000 a call); with any problem nothing is written.

    Raises:
        AccessDenied: role_required.
        MembersRefused: every problem, sorted by line (the file as a whole: line 0 or 1).
    """
    union = UnionSettings.objects.get(pk=union_id)
    _ensure_may_edit(user, union)
    items, problems = read_members_csv(data)
    if not items and not problems:
        raise MembersRefused([MemberProblem(0, "", "empty", "文件中没有会员 (the file holds no member)")])
    problems += _check_not_taken(union, items)
    wrong_lines = {p.line for p in problems}
    problems += _check_wallets([(line, details) for line, details in items if line not in wrong_lines])
    if problems:
        raise MembersRefused(sorted(problems, key=lambda p: (p.line, FIELD_ORDER.get(p.field, -1))))
    try:
        with transaction.atomic():
            members = UnionMember.objects.bulk_create(
                [UnionMember(union=union, active=True, **asdict(details)) for _, details in items])
            _trace(union, [("added", member, asdict(details)) for member, (_, details) in zip(members, items)],
                   actor=user.username, now=now)
    except IntegrityError:  # someone added one of these people meanwhile
        raise MembersRefused([MemberProblem(0, "resident_id", "already_member", "导入期间有会员被他人添加，请重新导入 "
                                            "(a member was added meanwhile: import the file again)")])
    return members
