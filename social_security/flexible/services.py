"""Flexible-employment premiums: enrol, change the base, make the months owed, pay them.

Amounts (bases, premiums, late fees) come from social_security.rules; nothing here multiplies a rate.
Money moves only through treasury.services.transfers: one transfer per payment, from the person's
personal wallet to the region's social-insurance fund wallet, keyed by the payment.

Rules this module chose (social_security/README.md, "Flexible employment"):
- a month is due by the last day of the following month; the late fee counts the days after that up to the
  day of payment (Asia/Shanghai), on the month's premium, at the region's daily rate;
- months are made on enrolment, by the nightly task, on a change of base and by a payment (under the
  enrolment's lock, before it picks months), never by opening a page; they are made up to the current month (monthly), the end of the current quarter (quarterly) or the end
  of the current year (yearly): that is how far ahead a person may pay;
- a payment pays the oldest months still due, in order, with no gap, at most a quarter's or a year's months
  beyond the current month as the frequency allows;
- a change of base level or frequency applies from the first month still due that is not overdue (or the
  next month made); months already overdue keep the base they fell due with.
"""
from __future__ import annotations

import calendar
import logging
import time
from dataclasses import dataclass
from functools import partial
from datetime import date, datetime

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from social_security import rules as social_rules
from social_security.models import FundAccount, InsuranceType, Region
from treasury.access.scoping import individual_person
from treasury.errors import InvalidTransfers
from treasury.models import NOT_PAID_STATES, UNPAID_STATES, Person, Transfer, TransferState, Wallet
from treasury.money import format_yuan
from treasury.selectors import business_day_bounds
from treasury.services import transfers as transfer_services
from treasury.services.transfers import NewTransfer, OperatorUnavailable, create_transfers
from treasury.services.wallets import ensure_personal_wallets, verify_wallets
from treasury.trace.services import EventSpec, append_events

from .models import (
    MONTHS_PER_PAYMENT, BaseChange, Enrolment, Frequency, Payment, PaymentLine, PaymentState, Period, PeriodState,
)

logger = logging.getLogger(__name__)

# The usual levels offered (档次): percent of the local average wage, clamped to floor..ceiling.
BASE_LEVELS = (60, 80, 100, 120, 140, 160, 180, 200, 220, 240, 260, 280, 300)
PURPOSE_CODE = "SIFX"  # 灵活就业社保费 (flexible-employment social-insurance premium)
PERSONAL_WALLET_TYPES = (Wallet.Type.PERSONAL, Wallet.Type.PERSONAL_SUB, Wallet.Type.HARDWARE)
P = PeriodState
PS = PaymentState


class FlexibleError(Exception):
    """A refused request: a message a person understands and a code an API client can act on."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def local_date(now: datetime) -> date:
    return timezone.localtime(now).date()


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def due_date_for(month: date) -> date:
    """A month's premium is due by the last day of the following month."""
    following = add_months(month, 1)
    return following.replace(day=calendar.monthrange(following.year, following.month)[1])


def overdue_days(*, due: date, on: date) -> int:
    return max(0, (on - due).days)


def horizon(*, frequency: str, today: date) -> date:
    """The last month that is made (and may be paid) today: the current month, the end of the current
    quarter or the end of the current year."""
    current = month_start(today)
    if frequency == Frequency.QUARTERLY:
        return date(current.year, (current.month - 1) // 3 * 3 + 3, 1)
    if frequency == Frequency.YEARLY:
        return date(current.year, 12, 1)
    return current


def _trace(enrolment: Enrolment, kind: str, *, actor: str, now: datetime, subject: str = "social.flexible.enrolment",
           subject_id=None, amount_fen: int | None = None, data: dict | None = None) -> None:
    append_events(stream_key=f"social-flexible-{enrolment.pk}", now=now, events=[EventSpec(
        kind=kind, subject_type=subject, subject_id=str(subject_id or enrolment.pk), actor=actor,
        amount_fen=amount_fen, source_ref=f"flexible {enrolment.pk}", data=data or {})])


# ---------------------------------------------------------------------------------------------
# Bases and amounts (all arithmetic in social_security.rules)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseLevel:
    level: int
    base_fen: int
    note: str  # the clamp note from the rules, "" when the level is inside floor..ceiling


def level_base(*, level: int, rules: social_rules.Rules) -> BaseLevel:
    """The base of an offered level (percent of the local average wage), from social_security.rules."""
    base_fen, note = social_rules.level_base(level_percent=_level(level), rules=rules)
    return BaseLevel(level=level, base_fen=base_fen, note=note)


def _level(level) -> int:
    if level not in BASE_LEVELS:
        raise FlexibleError(f"缴费档次须为 {', '.join(map(str, BASE_LEVELS))} 之一 (base level must be one of these)",
                            "invalid_level")
    return level


def base_levels(*, region: Region | str, on: date) -> list[BaseLevel]:
    """The levels a person may choose in a region on a day, with their bases."""
    rules = _rules(region, on)
    return [level_base(level=level, rules=rules) for level in BASE_LEVELS]


def _rules(region, on: date) -> social_rules.Rules:
    try:
        return social_rules.rules_for(region=region, on=on)
    except social_rules.RulesNotFound as exc:
        raise FlexibleError(str(exc), "no_rules") from exc


@dataclass(frozen=True)
class MonthAmounts:
    base_fen: int
    pension_fen: int
    pension_account_fen: int
    medical_fen: int

    @property
    def total_fen(self) -> int:
        return self.pension_fen + self.medical_fen


def month_amounts(*, region: Region, level: int, month: date) -> MonthAmounts:
    """A month's premiums at a level, from the rules in force on the month's first day."""
    rules = _rules(region, month)
    base = level_base(level=level, rules=rules)
    result = social_rules.premiums(base_fen=base.base_fen, rules=rules, kind=social_rules.FLEXIBLE)
    pension = result.of(InsuranceType.PENSION)
    medical = result.of(InsuranceType.MEDICAL)
    return MonthAmounts(base_fen=base.base_fen, pension_fen=pension.individual_fen,
                        pension_account_fen=pension.personal_account_fen, medical_fen=medical.individual_fen)


def late_fee_for(*, period: Period, on: date) -> tuple[int, int]:
    """(days overdue, late fee in fen) of a period paid on day `on`: the region's daily rate on the month's
    premium for each day after the due date (social_security.rules.late_fee)."""
    days = overdue_days(due=period.due_date, on=on)
    if days == 0:
        return 0, 0
    rules = _rules(period.enrolment.region, period.month)
    return days, social_rules.late_fee(overdue_fen=period.total_fen, days=days, rules=rules)


# ---------------------------------------------------------------------------------------------
# Enrolment
# ---------------------------------------------------------------------------------------------


def person_of(user) -> Person:
    person = individual_person(user)
    if person is None:
        raise FlexibleError("只有本人可以办理 (only the insured person may do this)", "individual_required")
    return person


def _frequency(value: str) -> str:
    if value not in Frequency.values:
        raise FlexibleError("缴费方式须为按月、按季或按年 (frequency must be monthly, quarterly or yearly)",
                            "invalid_frequency")
    return value


def _personal_wallet(*, person: Person, wallet_id: str) -> Wallet:
    """The person's own personal wallet, checked with the operator and registered if new.

    Raises FlexibleError (`wallet_not_found`, `wallet_inactive`, `not_personal`, `holder_mismatch`),
    OperatorUnavailable."""
    wallet_id = (wallet_id or "").strip()
    (check,) = verify_wallets(pairs=[(wallet_id, person.name)])
    if not check.exists:
        raise FlexibleError("运营机构查无此钱包 (the operator does not know this wallet)", "wallet_not_found")
    if not check.active:
        raise FlexibleError("钱包已冻结或注销 (the wallet is frozen or closed)", "wallet_inactive")
    if check.wallet_type not in PERSONAL_WALLET_TYPES:
        raise FlexibleError("须使用个人钱包缴费 (a personal wallet is needed)", "not_personal")
    if not check.holder_name_matches:
        raise FlexibleError("钱包户名与参保人不符 (the wallet is held by someone else)", "holder_mismatch")
    try:
        pks = ensure_personal_wallets(holders=[(wallet_id, person.name, person.resident_id)],
                                      known_checks={wallet_id: check})
    except ValueError as exc:
        raise FlexibleError(str(exc), "wallet_not_found") from exc
    wallet = Wallet.objects.get(pk=pks[wallet_id])
    # A wallet registered before under another person (same name, other ID) is not this person's.
    if wallet.holder_person_id != person.pk:
        raise FlexibleError("钱包户名与参保人不符 (the wallet is held by someone else)", "holder_mismatch")
    return wallet


def enrol(*, user, region_code: str, base_level: int, frequency: str, wallet_id: str, start_month: date,
          now: datetime) -> Enrolment:
    """The signed-in person enrols in a region. The wallet must be their own personal wallet (checked with
    the operator). The months from `start_month` up to the frequency's horizon are made at once.

    Raises:
        FlexibleError: `individual_required`, `already_enrolled`, `no_region_fund`, `no_rules`,
            `invalid_level`, `invalid_frequency`, `invalid_start`, wallet refusals (see _personal_wallet).
        OperatorUnavailable: the operator could not be asked; nothing recorded.
    """
    person = person_of(user)
    frequency = _frequency(frequency)
    if Enrolment.objects.filter(person=person).exists():
        raise FlexibleError("已办理灵活就业参保登记 (already enrolled)", "already_enrolled")
    fund = FundAccount.objects.select_related("region").filter(region__code=region_code).first()
    if fund is None:
        raise FlexibleError(f"地区 {region_code} 未开通灵活就业缴费 (no collection set up for this region)",
                            "no_region_fund")
    start = month_start(start_month)
    if start != start_month or start > month_start(local_date(now)):
        raise FlexibleError("起缴月份须为本月或以前月份的第一天 (start month: the first day of this or an earlier month)",
                            "invalid_start")
    month_amounts(region=fund.region, level=base_level, month=start)  # the rules cover it, the level is valid
    wallet = _personal_wallet(person=person, wallet_id=wallet_id)
    with transaction.atomic():
        enrolment = Enrolment.objects.create(
            person=person, region=fund.region, collecting_authority=fund.tax_authority,
            fund_wallet=fund.wallet, wallet=wallet, base_level=base_level, frequency=frequency,
            start_month=start, created_at=now)
        _trace(enrolment, "social.flexible.enrolled", actor=user.username, now=now,
               data={"region": fund.region.code, "level": base_level, "frequency": frequency,
                     "start_month": f"{start:%Y-%m}", "wallet": wallet.wallet_id})
        _make_periods(enrolment, today=local_date(now))
    return enrolment


def _make_periods(enrolment: Enrolment, *, today: date) -> int:
    """Make the months owed from the start (or the last month made) up to the horizon. Months whose
    rules are not configured yet (a new year's base) wait until they are."""
    last = enrolment.periods.order_by("-month").values_list("month", flat=True).first()
    month = add_months(last, 1) if last else enrolment.start_month
    end = horizon(frequency=enrolment.frequency, today=today)
    rows = []
    while month <= end:
        try:
            amounts = month_amounts(region=enrolment.region, level=enrolment.base_level, month=month)
        except FlexibleError:
            break
        rows.append(Period(enrolment=enrolment, month=month, base_level=enrolment.base_level,
                           base_fen=amounts.base_fen, pension_fen=amounts.pension_fen,
                           pension_account_fen=amounts.pension_account_fen, medical_fen=amounts.medical_fen,
                           total_fen=amounts.total_fen, due_date=due_date_for(month)))
        month = add_months(month, 1)
    Period.objects.bulk_create(rows)
    return len(rows)


def make_periods(*, enrolment_id: int, now: datetime) -> int:
    """Make the months that have become owed since the last call. Called by the nightly task for everyone;
    enrolment, a change of base and a payment make them too, under the same lock. Pages never write: they
    show the months made so far. Idempotent."""
    with transaction.atomic():
        enrolment = Enrolment.objects.select_for_update().get(pk=enrolment_id)
        return _make_periods(enrolment, today=local_date(now))


def make_all_periods(*, now: datetime) -> int:
    return sum(make_periods(enrolment_id=pk, now=now) for pk in Enrolment.objects.values_list("pk", flat=True))


def change_base(*, user, enrolment_id: int, base_level: int, frequency: str, now: datetime) -> BaseChange:
    """Change the base level and/or the frequency. Applies from the first month still due that is not
    overdue today (else from the next month made): those months are recomputed; months paid, being paid
    or overdue keep their amounts.

    Raises FlexibleError: `individual_required`, `not_found`, `invalid_level`, `invalid_frequency`,
    `no_change`, `no_rules`.
    """
    person = person_of(user)
    frequency = _frequency(frequency)
    _level(base_level)
    today = local_date(now)
    with transaction.atomic():
        enrolment = Enrolment.objects.select_for_update().filter(pk=enrolment_id, person=person).first()
        if enrolment is None:
            raise FlexibleError("没有此参保登记 (no such enrolment)", "not_found")
        if (base_level, frequency) == (enrolment.base_level, enrolment.frequency):
            raise FlexibleError("档次和缴费方式都没有变化 (nothing changed)", "no_change")
        periods = list(enrolment.periods.select_for_update().order_by("month"))
        open_periods = [p for p in periods if p.state == P.DUE and p.due_date >= today]
        if open_periods:
            effective = open_periods[0].month
        else:
            effective = add_months(periods[-1].month, 1) if periods else enrolment.start_month
        for period in [p for p in periods if p.month >= effective]:
            if period.state != P.DUE:
                continue
            amounts = month_amounts(region=enrolment.region, level=base_level, month=period.month)
            period.base_level, period.base_fen = base_level, amounts.base_fen
            period.pension_fen, period.pension_account_fen = amounts.pension_fen, amounts.pension_account_fen
            period.medical_fen, period.total_fen = amounts.medical_fen, amounts.total_fen
            period.save(update_fields=["base_level", "base_fen", "pension_fen", "pension_account_fen",
                                       "medical_fen", "total_fen"])
        enrolment.base_level, enrolment.frequency, enrolment.changed_at = base_level, frequency, now
        enrolment.save(update_fields=["base_level", "frequency", "changed_at"])
        change = BaseChange.objects.create(enrolment=enrolment, base_level=base_level, frequency=frequency,
                                           effective_month=effective, changed_by=user.username, changed_at=now)
        _trace(enrolment, "social.flexible.changed", actor=user.username, now=now,
               data={"level": base_level, "frequency": frequency, "effective_month": f"{effective:%Y-%m}"})
        _make_periods(enrolment, today=today)
    return change


# ---------------------------------------------------------------------------------------------
# Paying
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuoteLine:
    period: Period
    overdue_days: int
    late_fee_fen: int

    @property
    def amount_fen(self) -> int:
        return self.period.total_fen + self.late_fee_fen


@dataclass(frozen=True)
class Quote:
    """What paying these months costs on a day: premiums, late fees, total."""

    on: date
    lines: tuple[QuoteLine, ...]

    @property
    def contributions_fen(self) -> int:
        return sum(line.period.total_fen for line in self.lines)

    @property
    def late_fee_fen(self) -> int:
        return sum(line.late_fee_fen for line in self.lines)

    @property
    def amount_fen(self) -> int:
        return self.contributions_fen + self.late_fee_fen


def quote(*, periods, now: datetime) -> Quote:
    """Late fees counted to today (Asia/Shanghai) for each period; shown before paying and charged by `pay`."""
    today = local_date(now)
    return Quote(on=today, lines=tuple(QuoteLine(p, *late_fee_for(period=p, on=today)) for p in periods))


def payable_periods(*, enrolment: Enrolment, now: datetime) -> list[Period]:
    """The months that may be paid now, oldest first: every due month up to the frequency's horizon."""
    end = horizon(frequency=enrolment.frequency, today=local_date(now))
    return list(enrolment.periods.filter(state=P.DUE, month__lte=end).select_related("enrolment__region")
                .order_by("month"))


def check_selection(enrolment: Enrolment, due: list[Period], period_ids: list[int], now: datetime) -> list[Period]:
    """The chosen months, if they are the oldest due ones in order and within the frequency's reach; else
    FlexibleError (`no_periods`, `not_due`, `not_in_order`, `too_far_ahead`)."""
    wanted = set(period_ids)
    if not wanted:
        raise FlexibleError("请选择要缴的月份 (choose the months to pay)", "no_periods")
    chosen = [p for p in due if p.pk in wanted]
    if len(chosen) != len(wanted):
        raise FlexibleError("所选月份不是待缴月份 (some months chosen are not due)", "not_due")
    if chosen != due[: len(chosen)]:
        raise FlexibleError("须从最早的待缴月份起按顺序缴纳 (pay the oldest due months first, without gaps)",
                            "not_in_order")
    ahead = [p for p in chosen if p.month > month_start(local_date(now))]
    if len(ahead) > MONTHS_PER_PAYMENT[enrolment.frequency]:
        raise FlexibleError("超出缴费方式允许的预缴月数 (more months ahead than the frequency allows)", "too_far_ahead")
    return chosen


def wallet_paid_today_fen(*, wallet: Wallet, now: datetime) -> int:
    """What the service has paid or is paying from the wallet on the day of `now` (Asia/Shanghai): its transfers
    made that day, settled or in flight (not failed or cancelled; settled and returned since counts too, as the
    operator's daily total does not go down). One query on the transfers' payer index."""
    start, end = business_day_bounds(day=local_date(now))
    return (Transfer.objects.filter(payer=wallet, created_at__gte=start, created_at__lt=end)
            .exclude(state__in=UNPAID_STATES).aggregate(total=Sum("amount_fen"))["total"] or 0)


def class_limit_problem(wallet: Wallet, amount_fen: int, *, paid_today_fen: int) -> str:
    """Why the wallet's class refuses paying `amount_fen` now (`paid_today_fen` already paid today), or ""."""
    limits = settings.WALLET_CLASS_LIMITS.get(wallet.wallet_class) or {}
    single, daily = limits.get("single_fen"), limits.get("daily_fen")
    if single is not None and amount_fen > single:
        return (f"{wallet.wallet_class}类钱包单笔限额 {format_yuan(single)}，本次应缴 {format_yuan(amount_fen)}：请少缴几个月或"
                f"升级钱包 (a class {wallet.wallet_class} wallet pays at most {format_yuan(single)} at a time: pay fewer "
                f"months or upgrade the wallet)")
    if daily is not None and paid_today_fen + amount_fen > daily:
        return (f"{wallet.wallet_class}类钱包日累计限额 {format_yuan(daily)}，今日已付 {format_yuan(paid_today_fen)}，本次应缴 "
                f"{format_yuan(amount_fen)}：请明天再缴或少缴几个月 (a class {wallet.wallet_class} wallet pays at most "
                f"{format_yuan(daily)} a day, {format_yuan(paid_today_fen)} paid today: pay tomorrow or pay fewer months)")
    return ""


def pay(*, user, enrolment_id: int, period_ids: list[int], now: datetime) -> Payment:
    """The person pays the chosen months (the oldest due ones, in order) with their late fees to today, in
    one transfer from their wallet to the fund wallet. The transfer is sent at once and the outcome
    recorded; an outcome not known yet is finished by `finish_paying_payments`.

    Idempotent: asking again for months already being paid (or paid) by one payment returns that payment;
    nothing is debited twice. A wallet whose class limit the amount exceeds is refused before anything is
    written, the day's limit counting what the wallet already paid or is paying today.

    Raises:
        FlexibleError: `individual_required`, `not_found`, `no_periods`, `not_due`, `not_in_order`,
            `too_far_ahead`, `class_limit`, `wallet_inactive`.
    """
    person = person_of(user)
    with transaction.atomic():
        enrolment = (Enrolment.objects.select_for_update(of=("self",)).select_related("wallet", "fund_wallet", "region")
                     .filter(pk=enrolment_id, person=person).first())
        if enrolment is None:
            raise FlexibleError("没有此参保登记 (no such enrolment)", "not_found")
        earlier = _same_payment(enrolment, period_ids)
        if earlier is not None:
            return earlier
        # Under the enrolment's lock, before picking months: a month that became owed since the nightly task
        # ran is made now, so the oldest-first check sees every month there is.
        _make_periods(enrolment, today=local_date(now))
        due = payable_periods(enrolment=enrolment, now=now)
        chosen = check_selection(enrolment, due, period_ids, now)
        priced = quote(periods=chosen, now=now)
        wallet = enrolment.wallet
        if wallet.status != Wallet.Status.ACTIVE:
            raise FlexibleError("钱包已冻结或注销 (the wallet is frozen or closed)", "wallet_inactive")
        # Under the enrolment's lock: the wallet is its person's, who has one enrolment, so another payment from
        # the wallet waits here and then counts this one.
        problem = class_limit_problem(wallet, priced.amount_fen,
                                      paid_today_fen=wallet_paid_today_fen(wallet=wallet, now=now))
        if problem:
            raise FlexibleError(problem, "class_limit")
        payment = Payment.objects.create(
            enrolment=enrolment, wallet=wallet, fund_wallet=enrolment.fund_wallet,
            contributions_fen=priced.contributions_fen, late_fee_fen=priced.late_fee_fen,
            amount_fen=priced.amount_fen, paid_on=priced.on, created_by=user.username, created_at=now)
        PaymentLine.objects.bulk_create([
            PaymentLine(payment=payment, period=line.period, contribution_fen=line.period.total_fen,
                        overdue_days=line.overdue_days, late_fee_fen=line.late_fee_fen) for line in priced.lines])
        for period in chosen:
            period.start_paying()
            period.payment = payment
            period.save(update_fields=["state", "payment"])
        months = f"{chosen[0].month:%Y-%m}" + (f"..{chosen[-1].month:%Y-%m}" if len(chosen) > 1 else "")
        try:
            (transfer_id,) = create_transfers(
                organization_id=enrolment.collecting_authority_id, batch_ref=f"social-flexible-payment-{payment.pk}",
                transfers=[NewTransfer(
                    payer_id=wallet.pk, payee_id=enrolment.fund_wallet_id, amount_fen=payment.amount_fen,
                    idempotency_key=payment.idempotency_key, purpose_code=PURPOSE_CODE,
                    memo=f"灵活就业社保费 {months}"[:140],
                    source_type_id=ContentType.objects.get_for_model(Payment).pk, source_id=payment.pk,
                    source_ref=f"social flexible payment {payment.pk} {months}")],
                actor=user.username, now=now, enqueue=False)
        except InvalidTransfers as exc:
            raise FlexibleError(str(exc), "invalid_transfer") from exc
        payment.transfer_id = transfer_id
        payment.save(update_fields=["transfer"])
        _trace(enrolment, "social.flexible.paying", actor=user.username, now=now, subject="social.flexible.payment",
               subject_id=payment.pk, amount_fen=payment.amount_fen,
               data={"months": [f"{p.month:%Y-%m}" for p in chosen], "late_fee_fen": payment.late_fee_fen,
                     "transfer": transfer_id})
    # After commit, with no lock held: the person is waiting, so the transfer is sent now, not by a worker.
    try:
        transfer_services.submit_transfer_chunk(transfer_ids=[transfer_id], now=now)
    except OperatorUnavailable as exc:  # stays paying; recovery and the sweep finish it
        logger.warning("flexible payment %s: operator unavailable: %s", payment.pk, exc)
    _await_transfer(transfer_id)
    return finish_payment(payment_id=payment.pk, now=now)


def _same_payment(enrolment: Enrolment, period_ids: list[int]) -> Payment | None:
    """The payment already paying (or having paid) exactly these months, if any: a request sent twice."""
    if not period_ids:
        return None
    found = {p.payment_id for p in enrolment.periods.filter(pk__in=period_ids)
             if p.state in (P.PAYING, P.PAID)}
    if len(found) != 1 or None in found:
        return None
    payment = Payment.objects.get(pk=found.pop())
    if set(payment.lines.values_list("period_id", flat=True)) == set(period_ids):
        return payment
    return None


OPEN_TRANSFER_STATES = (TransferState.PENDING, TransferState.SUBMITTED)


def _await_transfer(transfer_id: int) -> None:
    """Should a worker have claimed the transfer first, wait for its answer up to the operator timeout."""
    deadline = time.monotonic() + settings.ECNY_OPERATOR_TIMEOUT_SECONDS + 1
    while (Transfer.objects.filter(pk=transfer_id, state__in=OPEN_TRANSFER_STATES).exists()
           and time.monotonic() < deadline):
        time.sleep(0.05)


def finish_payment(*, payment_id: int, now: datetime) -> Payment:
    """Record the transfer's outcome: settled -> the payment and its months are paid (late fees recorded);
    failed or cancelled, or settled and come back already (returned, reversed) -> the payment failed and its
    months are due again with the reason. Any other transfer state leaves it paying. Safe to call repeatedly."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update(of=("self",)).select_related("enrolment").get(pk=payment_id)
        if payment.state != PS.PAYING or payment.transfer_id is None:
            return payment
        transfer = Transfer.objects.get(pk=payment.transfer_id)
        lines = {line.period_id: line for line in payment.lines.all()}
        periods = list(Period.objects.select_for_update().filter(pk__in=lines).order_by("month"))
        if transfer.state == TransferState.SETTLED:
            payment.succeed()
            for period in periods:
                period.mark_paid()
                period.late_fee_fen, period.paid_at = lines[period.pk].late_fee_fen, transfer.finished_at or now
                period.last_failure = ""
                period.save(update_fields=["state", "late_fee_fen", "paid_at", "last_failure"])
            kind = "social.flexible.paid"
            # The authority is told after commit (5104); the sweep sends it again until acknowledged.
            transaction.on_commit(partial(_enqueue_notice, payment.pk))
        elif transfer.state in NOT_PAID_STATES:
            # Failed or cancelled; or settled and come back already (returned, reversed): the fund does not hold it,
            # so the months are owed again (a payment stuck paying would block every later month: oldest first).
            payment.fail()
            came_back = transfer.state in (TransferState.RETURNED, TransferState.REVERSED)
            reason = (transfer.failure_message or transfer.failure_code
                      or (f"缴费款已退回 (the payment came back): {transfer.get_state_display()}" if came_back
                          else "转账失败 (the transfer failed)"))[:255]
            payment.failure_reason = reason
            for period in periods:
                period.payment_failed()
                period.payment, period.last_failure = None, reason
                period.save(update_fields=["state", "payment", "last_failure"])
            kind = "social.flexible.failed"
        else:
            return payment
        payment.finished_at = now
        payment.save(update_fields=["state", "failure_reason", "finished_at"])
        _trace(payment.enrolment, kind, actor="system", now=now, subject="social.flexible.payment",
               subject_id=payment.pk, amount_fen=payment.amount_fen,
               data={"transfer": transfer.pk, "transfer_state": transfer.state, "reason": payment.failure_reason})
    return payment


def finish_paying_payments(*, now: datetime) -> int:
    """The periodic sweep: payments still paying whose transfer has an outcome now (after the transfer
    core's recovery asked the operator) are finished. Returns how many were."""
    finished = 0
    for payment_id in Payment.objects.filter(state=PS.PAYING).values_list("pk", flat=True):
        finished += finish_payment(payment_id=payment_id, now=now).state != PS.PAYING
    return finished


# ---------------------------------------------------------------------------------------------
# Telling the collecting authority (5104 payment notice)
# ---------------------------------------------------------------------------------------------


def _enqueue_notice(payment_id: int) -> None:
    from .tasks import notify_payment_task

    notify_payment_task.apply_async(kwargs={"payment_id": payment_id})


def payment_notice(*, payment: Payment):
    """The 5104 of a paid payment: the person's ID and name, the months (consecutive: payments pay the oldest
    due months with no gap), premiums, late fees and the amount, the wallet and the transfer's key."""
    from adapters.tips.interface import SocialFlexiblePayment

    enrolment, transfer = payment.enrolment, payment.transfer
    months = sorted(line.period.month for line in payment.lines.select_related("period"))
    return SocialFlexiblePayment(
        tax_org_code=enrolment.collecting_authority.code, pay_no=payment.payment_no,
        payer_id=enrolment.person.resident_id, payer_name=enrolment.person.name, region_code=enrolment.region.code,
        start_period=f"{months[0]:%Y%m}", end_period=f"{months[-1]:%Y%m}", month_num=len(months),
        premium_amount_fen=payment.contributions_fen, late_fee_fen=payment.late_fee_fen,
        amount_fen=transfer.amount_fen, pay_acct=payment.wallet.wallet_id,
        pay_date=local_date(transfer.settled_at or payment.finished_at), pay_serial=transfer.idempotency_key)


def notify_payment(*, payment_id: int, now: datetime) -> Payment:
    """Send a paid payment's 5104 notice (outbox): marked when the authority acknowledges it (90000, or 94051
    for one it already has). Unreachable or refused: left for the sweep (`notify_pending_payments`). No lock
    is held while sending; the authority dedupes on the payment number."""
    from adapters.tips.interface import ResultCode, TipsError
    from social_security.services import _tips

    payment = (Payment.objects.select_related("enrolment__person", "enrolment__region",
                                              "enrolment__collecting_authority", "wallet", "transfer")
               .get(pk=payment_id))
    if payment.state != PS.PAID or payment.notified_at is not None:
        return payment
    try:
        ack = _tips().send_social_flexible_payment(payment_notice(payment=payment))
    except TipsError as exc:
        logger.warning("flexible payment notice %s not acknowledged: %s", payment.payment_no, exc)
        return payment
    if ack.result not in (ResultCode.SUCCESS, ResultCode.DUPLICATE):
        logger.warning("flexible payment notice %s answered %s %s", payment.payment_no, ack.result, ack.add_word)
        return payment
    with transaction.atomic():
        payment = Payment.objects.select_for_update(of=("self",)).select_related("enrolment").get(pk=payment_id)
        if payment.notified_at is None:
            payment.notified_at = now
            payment.save(update_fields=["notified_at"])
            _trace(payment.enrolment, "social.flexible.payment_notified", actor="system", now=now,
                   subject="social.flexible.payment", subject_id=payment.pk, amount_fen=payment.amount_fen,
                   data={"result": ack.result})
    return payment


def notify_pending_payments(*, now: datetime) -> int:
    """The sweep: paid payments whose notice is not acknowledged yet are sent again. Returns how many were
    acknowledged now."""
    pending = Payment.objects.filter(state=PS.PAID, notified_at__isnull=True).order_by("pk").values_list("pk", flat=True)
    return sum(notify_payment(payment_id=pk, now=now).notified_at is not None for pk in list(pending))
