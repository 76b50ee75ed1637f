"""Enrolment, months owed, late fees and payments against hand-computed cases (sample city 370100, 2026:
average monthly wage 7,800.00 yuan, floor 4,680.00, ceiling 23,400.00; flexible pension 20% of which 8% to the
personal account, medical 9%; late fee 0.05% a day).

At level 100% the base is 780,000 fen: pension 156,000 (personal account 62,400), medical 70,200, total
226,200 fen a month. At 60%: 468,000: pension 93,600 (37,440), medical 42,120, total 135,720.
"""
import datetime as dt

import pytest
from django.utils import timezone

from social_security.flexible import services
from social_security.models import Region
from social_security.flexible.models import BaseChange, Enrolment, Payment, PaymentState, Period, PeriodState
from tests.social_security.flexible.conftest import NOW, at
from treasury.models import Transfer, TransferState
from treasury.services.ledger import check_ledger

SEP, OCT, NOV, DEC = (dt.date(2026, m, 1) for m in (9, 10, 11, 12))


def assert_ledger_ok():
    assert check_ledger().problems == []


def periods(enrolment):
    return list(enrolment.periods.order_by("month"))


def test_due_dates_and_days_overdue():
    assert services.due_date_for(SEP) == dt.date(2026, 10, 31)
    assert services.due_date_for(dt.date(2026, 1, 1)) == dt.date(2026, 2, 28)
    assert services.due_date_for(dt.date(2027, 1, 1)) == dt.date(2027, 2, 28)
    assert services.due_date_for(DEC) == dt.date(2027, 1, 31)
    assert services.overdue_days(due=dt.date(2026, 10, 31), on=dt.date(2026, 10, 31)) == 0
    assert services.overdue_days(due=dt.date(2026, 10, 31), on=dt.date(2026, 11, 26)) == 26
    assert services.horizon(frequency="monthly", today=dt.date(2026, 11, 26)) == NOV
    assert services.horizon(frequency="quarterly", today=dt.date(2026, 11, 26)) == DEC
    assert services.horizon(frequency="quarterly", today=dt.date(2026, 4, 1)) == dt.date(2026, 6, 1)
    assert services.horizon(frequency="yearly", today=dt.date(2026, 2, 3)) == DEC


@pytest.mark.django_db
def test_base_levels_are_percent_of_the_average_wage_within_floor_and_ceiling():
    levels = {b.level: b for b in services.base_levels(region="370100", on=NOV)}
    assert levels[60].base_fen == 468000 and levels[60].note == ""
    assert levels[100].base_fen == 780000
    assert levels[300].base_fen == 2340000
    assert levels[140].base_fen == 1092000 and sorted(levels) == list(range(60, 301, 20))
    amounts = services.month_amounts(region=Region.objects.get(code="370100"), level=100, month=NOV)
    assert (amounts.base_fen, amounts.pension_fen, amounts.pension_account_fen, amounts.medical_fen,
            amounts.total_fen) == (780000, 156000, 62400, 70200, 226200)
    with pytest.raises(services.FlexibleError) as refused:
        services.base_levels(region="370100", on=dt.date(2024, 5, 1))
    assert refused.value.code == "no_rules"


def test_enrol_makes_the_months_owed_with_their_amounts(flex):
    who = flex.individual()
    enrolment = flex.enrol(who)
    rows = periods(enrolment)
    assert [p.month for p in rows] == [SEP, OCT, NOV]
    assert {(p.base_fen, p.pension_fen, p.pension_account_fen, p.medical_fen, p.total_fen) for p in rows} == {
        (780000, 156000, 62400, 70200, 226200)}
    assert [p.due_date for p in rows] == [dt.date(2026, 10, 31), dt.date(2026, 11, 30), dt.date(2026, 12, 31)]
    assert enrolment.wallet.holder_person == who.person and enrolment.fund_wallet == flex.fund_wallet
    # Quarterly and yearly make the months up to the end of the quarter / year: that is how far one may pay ahead.
    quarterly = flex.enrol(flex.individual(), frequency="quarterly", start=NOV)
    assert [p.month for p in periods(quarterly)] == [NOV, DEC]


@pytest.mark.parametrize("problem, code", [
    ("unknown_wallet", "wallet_not_found"), ("someone_else", "holder_mismatch"), ("corporate", "not_personal"),
    ("frozen", "wallet_inactive"), ("future_start", "invalid_start"), ("bad_level", "invalid_level"),
    ("bad_frequency", "invalid_frequency"), ("no_region", "no_region_fund"),
])
def test_enrol_refusals_write_nothing(flex, problem, code):
    who = flex.individual()
    kwargs = dict(user=who.user, region_code="370100", base_level=100, frequency="monthly", wallet_id=who.wallet_id,
                  start_month=SEP, now=NOW)
    if problem == "unknown_wallet":
        kwargs["wallet_id"] = "3009999999999999"
    elif problem == "someone_else":
        other = flex.individual(name="王五")
        kwargs["wallet_id"] = other.wallet_id
    elif problem == "corporate":
        kwargs["wallet_id"] = flex.fund_wallet.wallet_id
    elif problem == "frozen":
        flex.ecny.admin.set_status(wallet_id=who.wallet_id, status="frozen")
    elif problem == "future_start":
        kwargs["start_month"] = DEC
    elif problem == "bad_level":
        kwargs["base_level"] = 90
    elif problem == "bad_frequency":
        kwargs["frequency"] = "weekly"
    elif problem == "no_region":
        kwargs["region_code"] = "110100"
    with pytest.raises(services.FlexibleError) as refused:
        services.enrol(**kwargs)
    assert refused.value.code == code
    assert not Enrolment.objects.exists() and not Period.objects.exists()


def test_only_an_individual_enrols_and_only_once(flex):
    with pytest.raises(services.FlexibleError) as refused:
        services.enrol(user=flex.staff, region_code="370100", base_level=100, frequency="monthly",
                       wallet_id="3000000000000001", start_month=SEP, now=NOW)
    assert refused.value.code == "individual_required"
    who = flex.individual()
    flex.enrol(who)
    with pytest.raises(services.FlexibleError) as refused:
        flex.enrol(who)
    assert refused.value.code == "already_enrolled"


def test_late_fee_is_half_a_permille_a_day_of_the_overdue_month(flex):
    enrolment = flex.enrol(flex.individual())
    sep, oct_, nov = periods(enrolment)
    # 226,200 x 0.0005 x 26 = 2,940.6 -> 2,941 (half up); on the due date and before: nothing.
    assert services.late_fee_for(period=sep, on=dt.date(2026, 11, 26)) == (26, 2941)
    assert services.late_fee_for(period=sep, on=dt.date(2026, 10, 31)) == (0, 0)
    # One day late: 113.1 -> 113. A year late (365 days): 41,281.5 -> 41,282.
    assert services.late_fee_for(period=sep, on=dt.date(2026, 11, 1)) == (1, 113)
    assert services.late_fee_for(period=sep, on=dt.date(2027, 10, 31)) == (365, 41282)
    assert services.late_fee_for(period=oct_, on=dt.date(2026, 12, 1)) == (1, 113)
    quote = services.quote(periods=[sep, oct_, nov], now=NOW)
    assert (quote.contributions_fen, quote.late_fee_fen, quote.amount_fen) == (678600, 2941, 681541)


def test_paying_the_overdue_month_with_its_late_fee(flex):
    who = flex.individual(balance_fen=10_000_00)
    enrolment = flex.enrol(who)
    sep = periods(enrolment)[0]
    payment = services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[sep.pk], now=NOW)
    assert payment.state == PaymentState.PAID
    assert (payment.contributions_fen, payment.late_fee_fen, payment.amount_fen) == (226200, 2941, 229141)
    sep.refresh_from_db()
    assert sep.state == PeriodState.PAID and sep.late_fee_fen == 2941 and sep.payment == payment
    assert flex.balance(who.wallet_id) == 10_000_00 - 229141
    assert flex.balance(flex.fund_wallet.wallet_id) == 229141
    transfer = payment.transfer
    assert transfer.state == TransferState.SETTLED and transfer.idempotency_key == f"socialflex:payment:{payment.pk}"
    assert transfer.payer.wallet_id == who.wallet_id and transfer.payee == flex.fund_wallet
    # Paying the same month again returns the same payment: nothing is debited twice.
    again = services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[sep.pk], now=NOW)
    assert again.pk == payment.pk and Transfer.objects.count() == 1
    assert flex.balance(who.wallet_id) == 10_000_00 - 229141
    assert_ledger_ok()


def test_months_are_paid_oldest_first_and_ahead_only_as_the_frequency_allows(flex):
    who = flex.individual()
    enrolment = flex.enrol(who)
    sep, oct_, nov = periods(enrolment)
    for ids, code in (([oct_.pk], "not_in_order"), ([sep.pk, nov.pk], "not_in_order"), ([], "no_periods"),
                      ([sep.pk, 999999], "not_due")):
        with pytest.raises(services.FlexibleError) as refused:
            services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=ids, now=NOW)
        assert refused.value.code == code
    assert not Payment.objects.exists() and not Transfer.objects.exists()
    # Quarterly in November: December may be paid ahead with the months before it.
    yearly_who = flex.individual()
    yearly = flex.enrol(yearly_who, frequency="quarterly", start=OCT)
    ids = [p.pk for p in periods(yearly)]
    payment = services.pay(user=yearly_who.user, enrolment_id=yearly.pk, period_ids=ids, now=NOW)
    assert payment.state == PaymentState.PAID and payment.late_fee_fen == 0 and payment.amount_fen == 3 * 226200


def test_someone_elses_enrolment_cannot_be_paid_or_changed(flex):
    owner, intruder = flex.individual(), flex.individual()
    enrolment = flex.enrol(owner)
    flex.enrol(intruder)
    sep = periods(enrolment)[0]
    with pytest.raises(services.FlexibleError) as refused:
        services.pay(user=intruder.user, enrolment_id=enrolment.pk, period_ids=[sep.pk], now=NOW)
    assert refused.value.code == "not_found"
    with pytest.raises(services.FlexibleError) as refused:
        services.change_base(user=intruder.user, enrolment_id=enrolment.pk, base_level=60, frequency="monthly",
                             now=NOW)
    assert refused.value.code == "not_found"


def test_a_class_4_wallet_paying_a_year_is_refused_before_any_transfer(flex):
    who = flex.individual(wallet_class=4, balance_fen=9_000_00)
    enrolment = flex.enrol(who, level=60, frequency="yearly", start=dt.date(2026, 1, 1))
    rows = periods(enrolment)
    assert len(rows) == 12 and rows[0].total_fen == 135720
    # January..March are due; paying the whole year is far beyond the class-4 single-payment limit (2,000 yuan).
    ids = [p.pk for p in rows]
    with pytest.raises(services.FlexibleError) as refused:
        services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=ids, now=at(dt.date(2026, 1, 20)))
    assert refused.value.code == "class_limit"
    assert "¥2,000.00" in str(refused.value)
    assert not Payment.objects.exists() and not Transfer.objects.exists()
    assert Period.objects.filter(state=PeriodState.DUE).count() == 12
    assert flex.balance(who.wallet_id) == 9_000_00
    # One month (1,357.20 yuan) fits.
    payment = services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=ids[:1], now=at(dt.date(2026, 1, 20)))
    assert payment.state == PaymentState.PAID and payment.amount_fen == 135720


def test_a_refused_payment_puts_the_months_back_to_due_and_a_retry_pays_once(flex):
    who = flex.individual(balance_fen=1_000_00)  # not enough for one month
    enrolment = flex.enrol(who)
    sep = periods(enrolment)[0]
    failed = services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[sep.pk], now=NOW)
    assert failed.state == PaymentState.FAILED and failed.failure_reason
    sep.refresh_from_db()
    assert sep.state == PeriodState.DUE and sep.payment is None and sep.last_failure == failed.failure_reason
    flex.ecny.admin.fund(wallet_id=who.wallet_id, amount_fen=5_000_00)
    paid = services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[sep.pk], now=NOW)
    assert paid.pk != failed.pk and paid.state == PaymentState.PAID
    assert paid.transfer.idempotency_key != failed.transfer.idempotency_key
    assert flex.balance(who.wallet_id) == 6_000_00 - 229141
    assert flex.balance(flex.fund_wallet.wallet_id) == 229141
    assert_ledger_ok()


@pytest.mark.parametrize("fault", ["timeout_after_apply", "error_after_apply"])
def test_an_unknown_outcome_stays_paying_until_recovery_and_never_pays_twice(flex, settings, fault):
    from adapters.ecny.client import get_operator_client
    from treasury.services.transfers import recover_unconfirmed_transfers

    who = flex.individual(balance_fen=10_000_00)
    enrolment = flex.enrol(who)
    sep = periods(enrolment)[0]
    settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 0.5
    get_operator_client.cache_clear()
    flex.ecny.admin.set_fault(fault, count=1, sleep_seconds=1.5)
    payment = services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[sep.pk], now=NOW)
    assert payment.state == PaymentState.PAYING
    assert flex.balance(who.wallet_id) == 10_000_00 - 229141  # the operator did debit
    # Asked again meanwhile: the same payment, no second debit; the month cannot be chosen in another.
    assert services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[sep.pk], now=NOW).pk == payment.pk
    assert Transfer.objects.count() == 1
    recover_unconfirmed_transfers(now=timezone.now(), older_than_seconds=0)
    assert services.finish_paying_payments(now=timezone.now()) == 1
    payment.refresh_from_db()
    sep.refresh_from_db()
    assert payment.state == PaymentState.PAID and sep.state == PeriodState.PAID
    assert flex.balance(who.wallet_id) == 10_000_00 - 229141
    assert flex.balance(flex.fund_wallet.wallet_id) == 229141
    assert services.finish_paying_payments(now=timezone.now()) == 0
    assert_ledger_ok()


def test_the_daily_limit_counts_what_the_wallet_paid_that_day(flex):
    """A class-4 wallet pays at most 2,000 yuan at a time and 5,000 a day. Paying one month (1,357.20 yuan) at a
    time, the fourth payment of the day (5,428.80 in all) is refused before anything is written, not sent for the
    operator to refuse; the next day it is paid."""
    who = flex.individual(wallet_class=4, balance_fen=9_000_00)
    enrolment = flex.enrol(who, level=60, frequency="yearly", start=dt.date(2026, 1, 1))
    months = periods(enrolment)
    assert months[0].total_fen == 135720
    jan_20 = at(dt.date(2026, 1, 20), hour=23)
    flex.ecny.admin.set_clock(at=jan_20)  # the operator's day is the service's
    for month in months[:3]:  # 4,071.60 yuan: within the day's 5,000
        paid = services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[month.pk], now=jan_20)
        assert paid.state == PaymentState.PAID
    assert services.wallet_paid_today_fen(wallet=enrolment.wallet, now=jan_20) == 3 * 135720

    with pytest.raises(services.FlexibleError) as refused:
        services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[months[3].pk], now=jan_20)
    assert refused.value.code == "class_limit"
    assert "日累计限额 ¥5,000.00，今日已付 ¥4,071.60" in str(refused.value)
    assert (Payment.objects.count(), Transfer.objects.count()) == (3, 3)
    months[3].refresh_from_db()
    assert months[3].state == PeriodState.DUE and months[3].last_failure == ""
    assert flex.balance(who.wallet_id) == 9_000_00 - 3 * 135720

    # An hour later it is 21 January in Shanghai (still the 20th in UTC): a new day's limit.
    jan_21 = at(dt.date(2026, 1, 21), hour=0)
    flex.ecny.admin.set_clock(at=jan_21)
    assert services.wallet_paid_today_fen(wallet=enrolment.wallet, now=jan_21) == 0
    paid = services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[months[3].pk], now=jan_21)
    assert paid.state == PaymentState.PAID
    assert_ledger_ok()


def test_an_error_before_the_operator_applies_is_sent_again_under_the_same_key(flex, settings):
    from treasury.services.transfers import recover_unconfirmed_transfers, submit_stranded_pending_transfers

    who = flex.individual(balance_fen=10_000_00)
    enrolment = flex.enrol(who)
    sep = periods(enrolment)[0]
    flex.ecny.admin.set_fault("error_before_apply", count=1)
    payment = services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[sep.pk], now=NOW)
    assert payment.state == PaymentState.PAYING
    assert flex.balance(who.wallet_id) == 10_000_00
    recover_unconfirmed_transfers(now=timezone.now(), older_than_seconds=0)
    submit_stranded_pending_transfers(now=timezone.now(), older_than_seconds=0)
    services.finish_paying_payments(now=timezone.now())
    payment.refresh_from_db()
    assert payment.state == PaymentState.PAID and Transfer.objects.count() == 1
    assert flex.balance(who.wallet_id) == 10_000_00 - 229141
    assert_ledger_ok()


def test_a_change_of_base_applies_from_the_next_month_not_overdue(flex):
    who = flex.individual()
    enrolment = flex.enrol(who)
    change = services.change_base(user=who.user, enrolment_id=enrolment.pk, base_level=60, frequency="quarterly",
                                  now=NOW)
    # September is overdue (kept at 100%); October onwards at 60%, and December is made (quarterly).
    assert change.effective_month == OCT
    rows = periods(enrolment)
    assert [(p.month, p.base_level, p.total_fen) for p in rows] == [
        (SEP, 100, 226200), (OCT, 60, 135720), (NOV, 60, 135720), (DEC, 60, 135720)]
    enrolment.refresh_from_db()
    assert (enrolment.base_level, enrolment.frequency) == (60, "quarterly")
    # Paid months keep their amounts: after paying September..October, a change applies from November.
    services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[rows[0].pk, rows[1].pk], now=NOW)
    change = services.change_base(user=who.user, enrolment_id=enrolment.pk, base_level=300, frequency="quarterly",
                                  now=NOW)
    assert change.effective_month == NOV
    assert [(p.base_level, p.total_fen) for p in periods(enrolment)] == [
        (100, 226200), (60, 135720), (300, 678600), (300, 678600)]
    assert BaseChange.objects.count() == 2
    with pytest.raises(services.FlexibleError) as refused:
        services.change_base(user=who.user, enrolment_id=enrolment.pk, base_level=300, frequency="quarterly", now=NOW)
    assert refused.value.code == "no_change"


def test_new_months_are_made_as_time_passes(flex):
    who = flex.individual()
    enrolment = flex.enrol(who, start=NOV)
    assert services.make_periods(enrolment_id=enrolment.pk, now=NOW) == 0
    assert services.make_periods(enrolment_id=enrolment.pk, now=at(dt.date(2026, 12, 2))) == 1
    # 2027 has no base limits in the sample city yet: January waits until the rules are configured.
    assert services.make_periods(enrolment_id=enrolment.pk, now=at(dt.date(2027, 1, 5))) == 0
    assert [p.month for p in periods(enrolment)] == [NOV, DEC]


def test_a_payment_makes_the_months_owed_since_the_nightly_task_before_it_picks(flex):
    """The nightly task has not run yet on 2 December: paying through December makes December under the
    enrolment's lock first, so it can be paid (and November, older, must come with it)."""
    who = flex.individual()
    enrolment = flex.enrol(who, start=NOV)
    nov = enrolment.periods.get(month=NOV)
    dec_2 = at(dt.date(2026, 12, 2))
    assert [p.month for p in periods(enrolment)] == [NOV]
    payment = services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[nov.pk], now=dec_2)
    assert payment.state == PaymentState.PAID
    assert [(p.month, p.state) for p in periods(enrolment)] == [(NOV, "paid"), (DEC, "due")]
    dec = enrolment.periods.get(month=DEC)
    with pytest.raises(services.FlexibleError) as refused:
        services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[dec.pk + 1000], now=dec_2)
    assert refused.value.code == "not_due"
    assert services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[dec.pk], now=dec_2).state == PaymentState.PAID


def test_a_wallet_class_limit_is_named_in_yuan_and_fen():
    from treasury.models import Wallet

    wallet = Wallet(wallet_class=3)  # single payment at most ¥5,000.00, ¥10,000.00 a day
    assert services.class_limit_problem(wallet, 5_000_00, paid_today_fen=5_000_00) == ""
    single = services.class_limit_problem(wallet, 6_786_01, paid_today_fen=0)
    assert "单笔限额 ¥5,000.00，本次应缴 ¥6,786.01" in single and "at most ¥5,000.00 at a time" in single
    daily = services.class_limit_problem(wallet, 5_000_00, paid_today_fen=5_000_01)
    assert "日累计限额 ¥10,000.00，今日已付 ¥5,000.01" in daily and "at most ¥10,000.00 a day" in daily
    assert services.class_limit_problem(Wallet(wallet_class=1), 1_000_000_00, paid_today_fen=1) == ""  # no limit
