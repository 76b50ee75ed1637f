"""Union fees (工会费): members' dues and the employer's union funds, paid in e-CNY.

- Dues (会费): rate x dues base, the base counted in whole 10 yuan (the part below 10 yuan is not
  counted), rounded half up to the fen. In the payroll run the employer withholds them from the
  salary (the file's union-dues column) and remits each member's dues to the union's wallet once the
  member's salary is paid; or the union collects them monthly from members' wallets under their
  standing authorisation.
- Funds (工会经费): 2% of the gross pay the run has paid, split between the grassroots union (its share)
  and the higher-level union (the rest, so no fen is lost), remitted as the run's lines are paid.
Every remittance is a transfer of its own, so each member and each union gets its receipt.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q, Sum

from treasury.access import roles
from treasury.access.errors import AccessDenied
from treasury.access.scoping import user_organization
from treasury.models import NOT_PAID_STATES, Transfer, TransferState
from treasury.money import fen_to_yuan_str
from treasury.services.transfers import NewTransfer, create_transfers
from treasury.services.wallets import ensure_personal_wallets
from treasury.trace.services import EventSpec, append_events

from .parsing import PAY_COMPONENTS
from .models import BatchState, DuesCall, PayrollBatch, PayrollLine, UnionMember, UnionSettings

PURPOSE_DUES = "UNION_DUES"
PURPOSE_FUNDS = "UNION_FUNDS"
TEN_YUAN_FEN = 1000


def dues_fen(*, base_fen: int, rate_bp: int) -> int:
    """Dues on a base: whole 10 yuan of the base x rate, ROUND_HALF_UP to the fen."""
    counted = base_fen - base_fen % TEN_YUAN_FEN
    return int((Decimal(counted) * rate_bp / Decimal(10000)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class FundsSplit:
    total_fen: int
    grassroots_fen: int
    higher_fen: int


def funds_split(*, gross_fen: int, funds_rate_bp: int, grassroots_share_bp: int) -> FundsSplit:
    """Union funds on a gross payroll and their split; the higher-level part takes the remainder."""
    total = int((Decimal(gross_fen) * funds_rate_bp / Decimal(10000)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    grassroots = int((Decimal(total) * grassroots_share_bp / Decimal(10000)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return FundsSplit(total_fen=total, grassroots_fen=grassroots, higher_fen=total - grassroots)


def percent_text(basis_points: int) -> str:
    """50 -> "0.5" (a rate as people write it, without the % sign)."""
    return f"{(Decimal(basis_points) / 100).normalize():f}"


class PayrollDuesCheck:
    """Withheld union dues of a payroll file against the union's rules, line by line as the file is read.

    For an active member of a union whose dues are deducted in the payroll run, the dues of a line should be
    `dues_fen` of the line's dues base (the sum of its pay components in the union's `base_components`).
    Any other amount, none withheld included, is a *warning* on the line, not a problem: the employer may
    have its reasons (a cap, half a month) and the dues are remitted as the file says.

    One query for the members (`for_union`), none a line: the import stores lines through one COPY that
    nothing else may interrupt. Members whose dues for the month are already paid or being collected are
    known only once the file's period is read, so their lines are picked out afterwards
    (`lines_paid_already`) and the caller drops the warning it stored for them."""

    # Expected dues by counted base: a payroll repeats its pay grades. Bounded like the parser's amount cache.
    _CACHE_SIZE = 65_536

    def __init__(self, *, settings: UnionSettings, members: set[str]):
        self.settings = settings
        self.members = members  # resident IDs of the active members
        self.rate_bp = settings.dues_rate_bp
        self.rate_text = percent_text(settings.dues_rate_bp)
        self.base_fields = tuple(name + "_fen" for name in settings.base_components)
        self.warned: dict[str, int] = {}  # resident ID -> line number, for the lines given a dues warning
        self._expected: dict[int, int] = {}

    @classmethod
    def for_union(cls, settings: UnionSettings | None) -> "PayrollDuesCheck | None":
        """The check for the payroll files of an employer with this union; None when it has no union here, the
        union collects its dues by monthly call, or it has no active member (then there is nothing to compare)."""
        if settings is None or not settings.dues_in_payroll:
            return None
        members = set(settings.members.filter(active=True).values_list("resident_id", flat=True))
        return cls(settings=settings, members=members) if members else None

    def base_fen(self, line) -> int:
        """The line's dues base: the sum of its pay components that make the union's base."""
        return sum(getattr(line, name) for name in self.base_fields)

    def expected_fen(self, base_fen: int) -> int:
        """The union's dues on a base (`dues_fen`: whole 10 yuan counted, ROUND_HALF_UP to the fen)."""
        counted = base_fen - base_fen % TEN_YUAN_FEN
        expected = self._expected.get(counted)
        if expected is None:
            expected = dues_fen(base_fen=counted, rate_bp=self.rate_bp)
            if len(self._expected) < self._CACHE_SIZE:
                self._expected[counted] = expected
        return expected

    def warning(self, line) -> str | None:
        """The warning for a parsed line (`parsing.PayrollLine`) whose withheld dues are not the union's, or None
        (not a member, or the dues are right). Chinese first, English in parentheses, amounts in yuan."""
        if line.resident_id not in self.members:
            return None
        base = self.base_fen(line)
        expected = self.expected_fen(base)
        actual = line.union_dues_fen
        if actual == expected:
            return None
        self.warned[line.resident_id] = line.line
        counted = base - base % TEN_YUAN_FEN
        how_zh = f"会费基数{fen_to_yuan_str(counted)}元的{self.rate_text}%"
        how_en = f"{self.rate_text}% of the dues base {fen_to_yuan_str(counted)} yuan"
        if counted != base:
            how_zh += "，不足10元部分不计"
            how_en += ", the part below 10 yuan not counted"
        should = fen_to_yuan_str(expected)
        if actual == 0:
            return (f"未代扣工会会费，按工会规定应为{should}元（{how_zh}） (no union dues withheld; the union's rules "
                    f"give {should} yuan: {how_en})")
        return (f"代扣工会会费{fen_to_yuan_str(actual)}元，按工会规定应为{should}元（{how_zh}） (union dues withheld "
                f"{fen_to_yuan_str(actual)} yuan; the union's rules give {should} yuan: {how_en})")

    def lines_paid_already(self, *, period: str) -> list[int]:
        """Line numbers given a dues warning whose member already has dues for `period` (paid or in flight, by
        a payroll run or a call): nothing is due from them in this file (dues withheld there are the upload's
        `dues_already_paid` problem), so the warning does not apply. One query, only when a line was warned."""
        if not self.warned or not period:
            return []
        paid = self.settings.dues_calls.filter(period=period).values_list("member__resident_id", flat=True)
        return sorted(self.warned[resident_id] for resident_id in set(paid) if resident_id in self.warned)


def payroll_dues_problems(*, settings: UnionSettings | None, withheld: list[tuple[int, str]],
                          period: str, batch_id: int) -> list[tuple[int, str, str]]:
    """(line number, code, message) for each stored line of payroll run `batch_id` whose withheld union dues the
    union could not take, so the upload reports them and they are never kept by the employer: withheld while the
    union collects its dues by monthly call, from someone who is not an active member, or from a member who
    already has dues for the month, or whose dues for the month another live run of the employer withholds too
    (not rejected or cancelled, the line not returned: its dues are remitted when that line is paid, and a member's
    month is remitted once, so these would stay with the employer). `withheld`: (line number, resident ID) of the
    stored lines withholding dues, in line order, as the upload stored them. Nothing when the employer has no union
    here."""
    if settings is None or not withheld:
        return []
    if not settings.dues_in_payroll:
        return [(line_no, "dues_by_call", "工会按月收取会费，工资中不应代扣 (the union collects its dues by monthly call: "
                 "do not withhold them in the payroll)") for line_no, _ in withheld]
    members = dict(settings.members.filter(active=True, resident_id__in=[rid for _, rid in withheld])
                   .values_list("resident_id", "pk"))
    had_dues = set(settings.dues_calls.filter(period=period, member_id__in=members.values())
                   .values_list("member_id", flat=True))
    other_runs = dict(
        PayrollLine.objects.filter(batch__employer_id=settings.employer_id, batch__period=period, returned=False,
                                   resident_id__in=list(members), deductions__union_dues__gt=0)
        .exclude(batch_id=batch_id).exclude(batch__state__in=[BatchState.REJECTED, BatchState.CANCELLED])
        .values_list("resident_id", "batch_id")
    ) if members else {}
    problems = []
    for line_no, resident_id in withheld:
        if resident_id not in members:
            problems.append((line_no, "dues_not_member", "代扣了工会会费，但此人不是工会会员 (union dues withheld from "
                             "someone who is not a union member)"))
        elif members[resident_id] in had_dues:
            problems.append((line_no, "dues_already_paid", f"此会员{period}的会费已收取或正在收取 (this member's dues "
                             f"for {period} are already paid or being collected)"))
        elif resident_id in other_runs:
            run = other_runs[resident_id]
            problems.append((line_no, "dues_already_paid", f"此会员{period}的会费已在代发批次{run}中代扣 (this member's "
                             f"dues for {period} are already withheld in payroll run {run})"))
    return problems


def remit_for_payroll(*, batch_id: int, actor: str, now: datetime) -> list[int]:
    """The unions' part of what a payroll run has actually paid, from the employer's wallet: for each line
    whose salary transfer has settled, the member's dues as withheld in the file (once per member and month,
    key union:<batch>:dues:<line>), and the union funds topped up to funds_split(gross of the settled lines)
    less what was already remitted and not failed, part by part, each top-up a transfer of its own
    (union:<batch>:funds:<part>, then :<n>). So a line paid later (a held or failed line retried) adds its
    dues and funds when it is paid, a line never paid (returned) remits nothing, and nothing is remitted
    twice, however often this runs. One transaction under the batch's and the union's locks.
    Returns the ids of the transfers made."""
    with transaction.atomic():
        batch = PayrollBatch.objects.select_for_update().get(pk=batch_id)
        settings = UnionSettings.objects.select_for_update().filter(employer=batch.employer_id).first()
        if settings is None:
            return []
        paid = batch.lines.filter(transfer__state=TransferState.SETTLED)
        line_type = ContentType.objects.get_for_model(PayrollLine)
        batch_type = ContentType.objects.get_for_model(PayrollBatch)
        batch_ref = f"{batch.batch_ref}-union"
        items, calls = [], []
        if settings.dues_in_payroll:
            had_dues = set(settings.dues_calls.filter(period=batch.period).values_list("member_id", flat=True))
            members = {m.resident_id: m for m in settings.members.filter(active=True) if m.pk not in had_dues}
            member_lines = paid.filter(resident_id__in=list(members)).order_by("line_no").values_list(
                "pk", "line_no", "resident_id", "deductions")
            for line_pk, line_no, resident_id, deductions in member_lines:
                amount = deductions.get("union_dues", 0)
                if amount <= 0:
                    continue
                items.append(NewTransfer(
                    payer_id=batch.payer_wallet_id, payee_id=settings.wallet_id, amount_fen=amount,
                    idempotency_key=f"union:{batch.pk}:dues:{line_no}", purpose_code=PURPOSE_DUES,
                    memo=f"{batch.period} 会费", source_type_id=line_type.pk, source_id=line_pk,
                    source_ref=f"{batch.batch_ref} line {line_no} union dues",
                ))
                calls.append(DuesCall(union=settings, member=members[resident_id], period=batch.period,
                                      amount_fen=amount, source=DuesCall.Source.PAYROLL, created_at=now))
        due = funds_split(gross_fen=paid.aggregate(total=Sum("gross_fen"))["total"] or 0,
                          funds_rate_bp=settings.funds_rate_bp, grassroots_share_bp=settings.grassroots_share_bp)
        funds = Transfer.objects.filter(batch_ref=batch_ref, purpose_code=PURPOSE_FUNDS)
        for part, wallet_id, part_due in (("grassroots", settings.wallet_id, due.grassroots_fen),
                                          ("higher", settings.higher_union_wallet_id, due.higher_fen)):
            key = f"union:{batch.pk}:funds:{part}"
            earlier = funds.filter(Q(idempotency_key=key) | Q(idempotency_key__startswith=f"{key}:"))
            remitted = earlier.exclude(state__in=NOT_PAID_STATES).aggregate(total=Sum("amount_fen"))["total"] or 0
            if part_due > remitted:
                attempt = earlier.count() + 1
                items.append(NewTransfer(
                    payer_id=batch.payer_wallet_id, payee_id=wallet_id, amount_fen=part_due - remitted,
                    idempotency_key=key + (f":{attempt}" if attempt > 1 else ""), purpose_code=PURPOSE_FUNDS,
                    memo=f"{batch.period} 工会经费", source_type_id=batch_type.pk, source_id=batch.pk,
                    source_ref=f"{batch.batch_ref} union funds ({part})",
                ))
        ids = create_transfers(organization_id=batch.employer_id, batch_ref=batch_ref, transfers=items, actor=actor,
                               now=now)
        for call, transfer_id in zip(calls, ids):
            call.transfer_id = transfer_id
        DuesCall.objects.bulk_create(calls)
    return ids


def remit_when_decided(*, batch_ref: str, now: datetime, **kwargs) -> None:
    """Receiver of the transfer core's `batch_decided`: a payroll run's open transfers are all decided, so
    the lines just paid get their union dues and funds (a retried line's decision sends it again)."""
    batch_id = PayrollBatch.pk_of_batch_ref(batch_ref)
    if batch_id is not None:
        remit_for_payroll(batch_id=batch_id, actor="system", now=now)


def union_remittance_fen(*, batch: PayrollBatch, line_ids: list[int] | None = None) -> int:
    """What the payroll run sends to the unions on top of the net pay (the funding check needs it); with `line_ids`,
    what paying those lines of it brings (a retry's check)."""
    settings = UnionSettings.objects.filter(employer=batch.employer_id).first()
    if settings is None:
        return 0
    lines = batch.lines.filter(held=False, returned=False) if line_ids is None else batch.lines.filter(pk__in=line_ids)
    dues = 0
    if settings.dues_in_payroll:
        members = set(settings.members.filter(active=True).values_list("resident_id", flat=True))
        dues = sum(d.get("union_dues", 0) for rid, d in lines.values_list("resident_id", "deductions") if rid in members)
    gross = sum(lines.values_list("gross_fen", flat=True))
    return dues + funds_split(gross_fen=gross, funds_rate_bp=settings.funds_rate_bp,
                              grassroots_share_bp=settings.grassroots_share_bp).total_fen


def issue_dues_call(*, union_id: int, period: str, actor: str, now: datetime) -> list[DuesCall]:
    """The union's monthly call: each active member with a standing authorisation pays dues on their
    declared base from their own wallet, if they have no dues for `period` yet or their earlier call's
    payment failed (a new attempt: a new transfer under its own key dues:<union>:<month>:<member>:<n>).
    Dues paid or in flight, and dues withheld in a payroll run, are never called again. One transaction,
    under the union's lock; idempotent per member, month and attempt. Returns the calls made or retried."""
    with transaction.atomic():
        settings = UnionSettings.objects.select_for_update().get(pk=union_id)
        earlier = {c.member_id: c for c in settings.dues_calls.filter(period=period).select_related("transfer")}
        owed = []
        for member in settings.members.filter(active=True, standing_authorisation=True).order_by("pk"):
            call = earlier.get(member.pk)
            # A failed payroll remittance is the employer's to pay: the member was already charged.
            if call is not None and not (call.source == DuesCall.Source.CALL and call.transfer
                                         and call.transfer.state in NOT_PAID_STATES):
                continue
            amount = dues_fen(base_fen=member.dues_base_fen, rate_bp=settings.dues_rate_bp)
            if amount > 0:
                owed.append((member, call, amount))
        if not owed:
            return []
        try:
            wallet_pks = ensure_personal_wallets(holders=[(m.wallet_id, m.name, m.resident_id) for m, _, _ in owed])
        except ValueError as exc:
            from .services import PayrollError

            raise PayrollError(str(exc), "wallet_unknown")
        fresh = DuesCall.objects.bulk_create([
            DuesCall(union=settings, member=m, period=period, amount_fen=amount, source=DuesCall.Source.CALL,
                     created_at=now)
            for m, call, amount in owed if call is None
        ])
        retried = []
        for member, call, amount in owed:
            if call is not None:
                call.attempts += 1
                call.amount_fen = amount  # on today's rate and base
                retried.append(call)
        calls = fresh + retried
        call_type = ContentType.objects.get_for_model(DuesCall)
        ids = create_transfers(
            organization_id=settings.union_id, batch_ref=f"union-{settings.pk}-dues-{period}", actor=actor, now=now,
            transfers=[
                NewTransfer(payer_id=wallet_pks[call.member.wallet_id], payee_id=settings.wallet_id,
                            amount_fen=call.amount_fen,
                            idempotency_key=f"dues:{settings.pk}:{period}:{call.member_id}"
                                            + (f":{call.attempts}" if call.attempts > 1 else ""),
                            purpose_code=PURPOSE_DUES, memo=f"{period} 会费", source_type_id=call_type.pk,
                            source_id=call.pk, source_ref=f"union {settings.pk} dues {period} member {call.member_id}")
                for call in calls
            ],
        )
        for call, transfer_id in zip(calls, ids):
            call.transfer_id = transfer_id
        DuesCall.objects.bulk_update(calls, ["transfer", "attempts", "amount_fen"])
    return calls


@dataclass(frozen=True)
class Arrear:
    member: UnionMember
    period: str
    amount_fen: int
    reason: str


def arrears(*, union_id: int, periods: list[str]) -> list[Arrear]:
    """Members who owe dues for these months: a call whose payment failed, or no dues at all."""
    settings = UnionSettings.objects.get(pk=union_id)
    owed = []
    calls = {(c.member_id, c.period): c for c in settings.dues_calls.filter(period__in=periods).select_related("transfer")}
    for member in settings.members.filter(active=True).order_by("employee_no", "pk"):
        for period in periods:
            call = calls.get((member.pk, period))
            if call is None:
                owed.append(Arrear(member, period, dues_fen(base_fen=member.dues_base_fen, rate_bp=settings.dues_rate_bp),
                                   "未缴 (not paid)"))
            elif call.transfer and call.transfer.state in NOT_PAID_STATES:
                owed.append(Arrear(member, period, call.amount_fen,
                                   f"扣款失败 (payment failed): {call.transfer.failure_code}"))
    return owed


# ---------------------------------------------------------------------------------------------
# The union's rules (rates, dues base, split), set by the union's own staff
# ---------------------------------------------------------------------------------------------

MAX_DUES_RATE_BP = 200  # 2%: the national rule is 0.5%; a higher figure is a typing error
MAX_FUNDS_RATE_BP = 200  # 2% of the gross payroll (工会法 第四十二条)
RULE_FIELDS = ("dues_rate_bp", "dues_base_components", "funds_rate_bp", "grassroots_share_bp", "dues_in_payroll")


class RulesRefused(Exception):
    """The rules were not changed; `problems` maps each field to its reason (中文 (English))."""

    code = "rules_invalid"

    def __init__(self, problems: dict[str, str]):
        super().__init__("; ".join(problems.values()))
        self.problems = problems


@dataclass(frozen=True)
class UnionRules:
    """What the union sets: rates and shares as percentages with at most two decimals (basis points inside)."""

    dues_rate_percent: Decimal
    dues_base_components: tuple[str, ...]
    funds_rate_percent: Decimal
    grassroots_share_percent: Decimal
    dues_in_payroll: bool

    @classmethod
    def of(cls, values: dict) -> "UnionRules":
        """From a form's or a serializer's validated values (the field names are these)."""
        return cls(dues_rate_percent=values["dues_rate_percent"],
                   dues_base_components=tuple(values["dues_base_components"]),
                   funds_rate_percent=values["funds_rate_percent"],
                   grassroots_share_percent=values["grassroots_share_percent"],
                   dues_in_payroll=values["dues_in_payroll"])


def may_change_rules(*, user, union: UnionSettings) -> bool:
    """The union's own operators and approvers: the employer pays the dues and funds, so it does not set them."""
    org = user_organization(user)
    return (not roles.is_read_only(user) and roles.has_role(user, roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER)
            and org is not None and org.pk == union.union_id)


def _basis_points(value, *, field: str, label: str, low_bp: int, high_bp: int, problems: dict) -> int:
    """A percentage (e.g. "0.5") as basis points, refused outside [low, high] or with more than two decimals."""
    try:
        bp = Decimal(str(value).strip().rstrip("%")) * 100
    except ArithmeticError:
        bp = None
    if bp is None or not bp.is_finite() or bp != bp.to_integral_value():
        problems[field] = f"{label}应为最多两位小数的百分比 ({label}: a percentage with at most two decimals)"
        return 0
    if not low_bp <= bp <= high_bp:
        problems[field] = (f"{label}应在 {Decimal(low_bp) / 100:f}% 至 {Decimal(high_bp) / 100:f}% 之间 "
                           f"({label}: between {Decimal(low_bp) / 100:f}% and {Decimal(high_bp) / 100:f}%)")
        return 0
    return int(bp)


def change_rules(*, union_id: int, user, rules: UnionRules, now: datetime) -> UnionSettings:
    """Set a union's dues rate (0.01%-2%), dues base (pay components), funds rate (0.01%-2%), the grassroots
    share of the funds (0-100%) and whether dues are deducted in the payroll run. Applies to payroll runs paid
    and calls made from now on. One transaction under the union's lock; what changed is a trace event
    (`payroll.union.rules_changed` on `union-<id>-rules`, each field before and after); no change, no event.

    Raises:
        AccessDenied: role_required (not an operator or approver of this union).
        RulesRefused: each wrong field with its reason.
    """
    problems: dict[str, str] = {}
    wanted = {
        "dues_rate_bp": _basis_points(rules.dues_rate_percent, field="dues_rate_bp", label="会费比例 (dues rate)",
                                      low_bp=1, high_bp=MAX_DUES_RATE_BP, problems=problems),
        "funds_rate_bp": _basis_points(rules.funds_rate_percent, field="funds_rate_bp", label="经费比例 (funds rate)",
                                       low_bp=1, high_bp=MAX_FUNDS_RATE_BP, problems=problems),
        "grassroots_share_bp": _basis_points(rules.grassroots_share_percent, field="grassroots_share_bp",
                                             label="基层留成 (grassroots share)", low_bp=0, high_bp=10000,
                                             problems=problems),
        # Kept in the fixed order of the components, whatever order they were ticked in.
        "dues_base_components": [c for c in PAY_COMPONENTS if c in rules.dues_base_components],
        "dues_in_payroll": bool(rules.dues_in_payroll),
    }
    unknown = set(rules.dues_base_components) - set(PAY_COMPONENTS)
    if unknown or not rules.dues_base_components:
        problems["dues_base_components"] = (
            f"会费基数应由工资项目组成：{', '.join(PAY_COMPONENTS)} (the dues base: one or more of these pay components)")
    with transaction.atomic():
        settings = UnionSettings.objects.select_for_update().get(pk=union_id)
        if not may_change_rules(user=user, union=settings):
            raise AccessDenied("只有本工会的经办、审批人员可以修改工会规则 (only the union's own operators and approvers "
                               "change its rules)", code="role_required")
        if problems:
            raise RulesRefused(problems)
        before = {name: getattr(settings, name) for name in RULE_FIELDS}
        before["dues_base_components"] = settings.base_components  # empty means the basic wage
        changed = {name: [before[name], value] for name, value in wanted.items() if before[name] != value}
        if not changed:
            return settings
        for name, (_, value) in changed.items():
            setattr(settings, name, value)
        settings.save(update_fields=list(changed))
        append_events(stream_key=f"union-{settings.pk}-rules", now=now, events=[EventSpec(
            kind="payroll.union.rules_changed", subject_type="payroll.union", subject_id=str(settings.pk),
            actor=user.username, source_ref=f"union {settings.pk}", data=changed)])
    return settings
