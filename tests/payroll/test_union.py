"""Union fees to the fen: dues arithmetic, funds split, remittance with the payroll run, monthly calls, arrears."""
import pytest
from django.utils import timezone

from payroll import services, union
from payroll.models import BatchState, DuesCall, UnionMember
from tests.payroll import builders
from tests.payroll.helpers import approved_and_funded, staff, upload
from treasury.models import Transfer, TransferState
from treasury.services import transfers as transfer_services
from treasury.services.ledger import check_ledger


@pytest.mark.parametrize("base_fen,rate_bp,dues", [
    (876_543, 50, 4_380),  # 8,765.43 yuan: 8,760 counted, 0.5% = 43.80
    (999, 50, 0),  # below 10 yuan nothing is counted
    (123_456, 50, 615),  # 1,230 counted -> 6.15
    (1_000, 50, 5),  # 10 yuan -> 0.05
    (3_000, 15, 5),  # 30 yuan x 0.15% = 4.5 fen -> 5 (half up)
    (500_000, 100, 5_000),  # another union's rate: 1%
])
def test_dues_arithmetic(base_fen, rate_bp, dues):
    assert union.dues_fen(base_fen=base_fen, rate_bp=rate_bp) == dues


@pytest.mark.parametrize("gross_fen,total,grassroots", [
    (100_000_001, 2_000_000, 1_200_000),  # 2% of 1,000,000.01 yuan, 60% kept
    (250, 5, 3),  # 5 fen: 3 kept, 2 go up; nothing lost
    (0, 0, 0),
])
def test_funds_split_loses_no_fen(gross_fen, total, grassroots):
    split = union.funds_split(gross_fen=gross_fen, funds_rate_bp=200, grassroots_share_bp=6_000)
    assert (split.total_fen, split.grassroots_fen) == (total, grassroots)
    assert split.grassroots_fen + split.higher_fen == split.total_fen


def members_for(settings, rows, *, authorised=True):
    return [
        UnionMember.objects.create(union=settings, employee_no=r[0], name=r[1], resident_id=r[2], wallet_id=r[3],
                                   standing_authorisation=authorised, dues_base_fen=builders.net_fen(r))
        for r in rows
    ]


@pytest.mark.django_db(transaction=True)
def without_dues(row: list[str]) -> list[str]:
    """The row with no union dues withheld (column 13), its net that much higher."""
    row = list(row)
    net = builders.net_fen(row) + builders.net_fen(["", row[13]])
    row[13], row[15] = "0.00", f"{net // 100}.{net % 100:02d}"
    return row


def test_payroll_run_remits_dues_and_funds_to_the_fen(employer, grassroots):
    rows = staff(employer, 6)
    members_for(grassroots, rows[:4])  # two of the six are not members: nothing withheld from them
    rows[4:] = [without_dues(r) for r in rows[4:]]
    batch = approved_and_funded(employer, rows)
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    dues = 4 * 2_500  # the file's union-dues column: 25.00 yuan each
    gross = sum(line.gross_fen for line in batch.lines.all())
    split = union.funds_split(gross_fen=gross, funds_rate_bp=200, grassroots_share_bp=6_000)
    admin = employer.sandbox.admin
    assert admin.balance(wallet_id=grassroots.wallet.wallet_id) == dues + split.grassroots_fen
    assert admin.balance(wallet_id=grassroots.higher_union_wallet.wallet_id) == split.higher_fen
    assert DuesCall.objects.filter(source=DuesCall.Source.PAYROLL, period=batch.period).count() == 4
    union_transfers = Transfer.objects.filter(batch_ref=f"{batch.batch_ref}-union")
    assert union_transfers.count() == 6 and set(union_transfers.values_list("state", flat=True)) == {TransferState.SETTLED}
    assert all(hasattr(t, "receipt") for t in union_transfers)  # each member and each union gets its receipt
    assert check_ledger().problems == []


@pytest.mark.django_db(transaction=True)
def test_monthly_call_collects_once_and_lists_arrears(employer, grassroots):
    rows = staff(employer, 4)
    paying = members_for(grassroots, rows[:3])
    members_for(grassroots, rows[3:], authorised=False)
    for row in rows[:2]:  # two members have money in their wallets; the third has none
        employer.sandbox.admin.fund(wallet_id=row[3], amount_fen=100_00)
    calls = union.issue_dues_call(union_id=grassroots.pk, period="2025-07", actor="union", now=timezone.now())
    assert len(calls) == 3
    # Calling again collects nothing twice: only the failed one is tried again (and fails again: no money).
    again = union.issue_dues_call(union_id=grassroots.pk, period="2025-07", actor="union", now=timezone.now())
    assert [(c.member_id, c.attempts) for c in again] == [(paying[2].pk, 2)]
    expected = union.dues_fen(base_fen=paying[0].dues_base_fen, rate_bp=50)
    assert employer.sandbox.admin.balance(wallet_id=rows[0][3]) == 100_00 - expected
    owed = union.arrears(union_id=grassroots.pk, periods=["2025-07"])
    assert sorted((a.member.employee_no, a.reason.split(" ")[0]) for a in owed) == [
        (rows[2][0], "扣款失败"), (rows[3][0], "未缴")]
    assert "INSUFFICIENT_BALANCE" in owed[0].reason or "INSUFFICIENT_BALANCE" in owed[1].reason


@pytest.mark.django_db(transaction=True)
def test_a_failed_call_is_collected_by_a_later_call_under_a_new_key(employer, grassroots):
    rows = staff(employer, 2)
    first, second = members_for(grassroots, rows)
    employer.sandbox.admin.fund(wallet_id=rows[0][3], amount_fen=100_00)
    union.issue_dues_call(union_id=grassroots.pk, period="2025-07", actor="union", now=timezone.now())
    failed = DuesCall.objects.get(member=second)
    assert failed.transfer.state == TransferState.FAILED  # an empty wallet
    employer.sandbox.admin.fund(wallet_id=rows[1][3], amount_fen=100_00)
    again = union.issue_dues_call(union_id=grassroots.pk, period="2025-07", actor="union", now=timezone.now())
    assert [c.pk for c in again] == [failed.pk]  # the paid member is not charged twice
    call = DuesCall.objects.select_related("transfer").get(pk=failed.pk)
    expected = union.dues_fen(base_fen=second.dues_base_fen, rate_bp=50)
    assert (call.attempts, call.amount_fen, call.transfer.state) == (2, expected, TransferState.SETTLED)
    assert call.transfer.idempotency_key == f"dues:{grassroots.pk}:2025-07:{second.pk}:2"
    assert employer.sandbox.admin.balance(wallet_id=rows[1][3]) == 100_00 - expected
    assert union.arrears(union_id=grassroots.pk, periods=["2025-07"]) == []
    # Paid now: a third call collects nothing.
    assert union.issue_dues_call(union_id=grassroots.pk, period="2025-07", actor="union", now=timezone.now()) == []
    assert check_ledger().problems == []


@pytest.mark.django_db(transaction=True)
def test_dues_whose_money_came_back_are_owed_and_collected_again(employer, grassroots):
    """The operator took a member's dues but its reply was lost; by the time recovery asks, the money went back to
    the member (returned). The call is not paid: it is in the arrears and the next call collects it once."""
    rows = staff(employer, 1)
    (member,) = members_for(grassroots, rows)
    employer.sandbox.admin.fund(wallet_id=rows[0][3], amount_fen=100_00)
    employer.sandbox.admin.set_fault("error_after_apply", count=1)
    union.issue_dues_call(union_id=grassroots.pk, period="2025-07", actor="union", now=timezone.now())
    call = DuesCall.objects.get(member=member)
    employer.sandbox.admin.return_transfer(request_id=call.transfer.idempotency_key, reason="退回 (returned)")
    transfer_services.recover_unconfirmed_transfers(now=timezone.now(), older_than_seconds=0)
    call.refresh_from_db()
    assert call.transfer.state == TransferState.RETURNED
    assert [a.member.pk for a in union.arrears(union_id=grassroots.pk, periods=["2025-07"])] == [member.pk]

    union.issue_dues_call(union_id=grassroots.pk, period="2025-07", actor="union", now=timezone.now())
    call = DuesCall.objects.select_related("transfer").get(pk=call.pk)
    expected = union.dues_fen(base_fen=member.dues_base_fen, rate_bp=50)
    assert (call.attempts, call.transfer.state) == (2, TransferState.SETTLED)
    assert employer.sandbox.admin.balance(wallet_id=rows[0][3]) == 100_00 - expected  # taken once, in the end
    assert union.arrears(union_id=grassroots.pk, periods=["2025-07"]) == []


def union_money(batch, purpose):
    return sum(Transfer.objects.filter(batch_ref=f"{batch.batch_ref}-union", purpose_code=purpose,
                                       state=TransferState.SETTLED).values_list("amount_fen", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_held_line_paid_later_adds_its_dues_and_funds_once(employer, grassroots):
    rows = staff(employer, 3, skip=(2,))  # the third wallet is unknown at upload: the line is held
    members_for(grassroots, rows)
    batch = approved_and_funded(employer, rows, hold_invalid_lines=True)
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    first_gross = sum(batch.lines.filter(held=False).values_list("gross_fen", flat=True))
    assert union_money(batch, union.PURPOSE_FUNDS) == union.funds_split(
        gross_fen=first_gross, funds_rate_bp=200, grassroots_share_bp=6_000).total_fen
    assert union_money(batch, union.PURPOSE_DUES) == 2 * 2_500

    employer.sandbox.admin.open_wallet(wallet_id=rows[2][3], wallet_type="WT01", wallet_class=2, holder_name=rows[2][1])
    held = batch.lines.get(held=True)
    services.retry_lines(batch_id=batch.pk, line_ids=[held.pk], user=employer.approver, now=timezone.now())
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    gross = sum(batch.lines.values_list("gross_fen", flat=True))
    split = union.funds_split(gross_fen=gross, funds_rate_bp=200, grassroots_share_bp=6_000)
    admin = employer.sandbox.admin
    assert admin.balance(wallet_id=grassroots.wallet.wallet_id) == 3 * 2_500 + split.grassroots_fen
    assert admin.balance(wallet_id=grassroots.higher_union_wallet.wallet_id) == split.higher_fen
    keys = set(Transfer.objects.filter(purpose_code=union.PURPOSE_FUNDS).values_list("idempotency_key", flat=True))
    assert keys == {f"union:{batch.pk}:funds:grassroots", f"union:{batch.pk}:funds:higher",
                    f"union:{batch.pk}:funds:grassroots:2", f"union:{batch.pk}:funds:higher:2"}
    # Run again (a second delivery, the sweep): nothing more.
    assert union.remit_for_payroll(batch_id=batch.pk, actor="x", now=timezone.now()) == []
    assert check_ledger().problems == []


@pytest.mark.django_db(transaction=True)
def test_a_returned_line_remits_no_dues_and_no_funds(employer, grassroots):
    rows = staff(employer, 2)
    members_for(grassroots, rows)
    batch = approved_and_funded(employer, rows)
    employer.sandbox.admin.set_status(wallet_id=rows[0][3], status="frozen")  # after the checks: the payment fails
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    batch = services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
    failed = batch.lines.get(wallet_id=rows[0][3])
    assert failed.transfer.state == TransferState.FAILED
    services.return_lines(batch_id=batch.pk, line_ids=[failed.pk], user=employer.operator_user, reason="现金发放",
                          now=timezone.now())
    paid = batch.lines.get(wallet_id=rows[1][3])
    split = union.funds_split(gross_fen=paid.gross_fen, funds_rate_bp=200, grassroots_share_bp=6_000)
    assert union_money(batch, union.PURPOSE_DUES) == paid.deductions["union_dues"]
    assert union_money(batch, union.PURPOSE_FUNDS) == split.total_fen
    assert list(DuesCall.objects.values_list("member__wallet_id", flat=True)) == [rows[1][3]]
    assert union.remit_for_payroll(batch_id=batch.pk, actor="x", now=timezone.now()) == []


@pytest.mark.django_db(transaction=True)
def test_dues_the_union_could_not_take_are_reported_at_upload_and_never_kept(employer, grassroots):
    """Dues withheld from someone who is not a member, or from a member whose month is already paid: the file
    is rejected with the line named; paying the valid lines holds those lines; dues withheld while the union
    collects by call are refused the same way."""
    rows = staff(employer, 3)
    members = members_for(grassroots, rows[:2])
    DuesCall.objects.create(union=grassroots, member=members[1], period="2025-06", amount_fen=2_500,
                            source=DuesCall.Source.CALL, created_at=timezone.now())
    batch = upload(employer, rows)
    assert batch.state == BatchState.REJECTED
    codes = {(p["code"], p["column"]) for p in batch.problems}
    assert codes == {("dues_already_paid", "工会会费"), ("dues_not_member", "工会会费")}

    held = upload(employer, rows, hold_invalid_lines=True)
    assert held.state == BatchState.VALIDATED and (held.payable_count, held.held_count) == (1, 2)
    assert held.total_net_fen == builders.net_fen(rows[0])
    assert set(held.lines.filter(held=True).values_list("resident_id", flat=True)) == {rows[1][2], rows[2][2]}
    reasons = dict(held.lines.filter(held=True).values_list("resident_id", "hold_reason"))
    assert "已收取" in reasons[rows[1][2]]  # each held line says its own reason
    assert "不是工会会员" in reasons[rows[2][2]]

    grassroots.dues_in_payroll = False
    grassroots.save()
    refused = upload(employer, [rows[0]])
    assert refused.state == BatchState.REJECTED and refused.problems[0]["code"] == "dues_by_call"
    accepted = upload(employer, [without_dues(rows[0])])
    assert accepted.state == BatchState.VALIDATED


def with_bonus(row: list[str], fen: int = 100_00) -> list[str]:
    """The row with `fen` more bonus, gross and net: another run's line for the same person."""
    row = list(row)
    for index in (7, 9, 15):
        amount = builders.net_fen(["", row[index]]) + fen
        row[index] = f"{amount // 100}.{amount % 100:02d}"
    return row


@pytest.mark.django_db(transaction=True)
def test_dues_withheld_again_in_another_run_of_the_month_are_refused_not_kept(employer, grassroots):
    """A member's dues are remitted once a month, when their line is paid. A second run of the same month that
    withholds them again (a corrected file, a bonus run) was accepted while the first had not paid yet: its dues
    were then remitted by neither run, and stayed with the employer."""
    rows = staff(employer, 2)
    members_for(grassroots, rows)
    first = approved_and_funded(employer, rows)  # not paid yet: no dues recorded for the month
    again = [with_bonus(r) for r in rows]
    refused = upload(employer, again)
    assert refused.state == BatchState.REJECTED
    assert {(p["code"], p["column"]) for p in refused.problems} == {("dues_already_paid", "工会会费")}
    assert all(f"代发批次{first.pk}" in p["message"] and f"payroll run {first.pk}" in p["message"]
               for p in refused.problems)
    bonus = approved_and_funded(employer, [without_dues(r) for r in again])  # withholding nothing: a run of its own
    for batch in (first, bonus):
        services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
        assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    withheld = sum(line.deductions["union_dues"] for b in (first, bonus) for line in b.lines.all())
    assert withheld == union_money(first, union.PURPOSE_DUES) + union_money(bonus, union.PURPOSE_DUES) == 2 * 2_500

    # Once the run withholding them is cancelled, another run may withhold the month's dues, and remits them.
    rows = staff(employer, 1, start=10)
    members_for(grassroots, rows)
    cancelled = approved_and_funded(employer, rows)
    services.cancel_batch(batch_id=cancelled.pk, user=employer.operator_user, reason="改了奖金", now=timezone.now())
    corrected = approved_and_funded(employer, [with_bonus(rows[0])])
    assert corrected.state == BatchState.FUNDED
    services.pay_batch(batch_id=corrected.pk, user=employer.operator_user, now=timezone.now())
    assert union_money(corrected, union.PURPOSE_DUES) == 2_500


@pytest.mark.django_db(transaction=True)
def test_a_line_held_for_its_dues_is_retried_only_once_the_union_can_take_them(employer, grassroots):
    """A retry checks a line's withheld dues again, as the upload did: while the union cannot take them (here the
    person is not a member) the line is refused and nothing is sent, since remitting nothing would leave the
    25.00 yuan with the employer; once the person has joined, the retry pays the line and the dues go on."""
    rows = staff(employer, 2)
    members_for(grassroots, rows[:1])  # the second person is not a member, yet the file withholds 25.00 of dues
    batch = approved_and_funded(employer, rows, hold_invalid_lines=True)
    held = batch.lines.get(held=True)
    assert "不是工会会员" in held.hold_reason
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PARTIALLY_PAID
    admin = employer.sandbox.admin
    union_before = admin.balance(wallet_id=grassroots.wallet.wallet_id)

    with pytest.raises(services.PayrollError) as refused:
        services.retry_lines(batch_id=batch.pk, line_ids=[held.pk], user=employer.approver, now=timezone.now())
    assert refused.value.code == "dues_not_member" and f"第{held.line_no}行" in str(refused.value)
    held.refresh_from_db()
    assert held.held and held.transfer_id is None
    assert admin.balance(wallet_id=rows[1][3]) == 0
    assert admin.balance(wallet_id=grassroots.wallet.wallet_id) == union_before

    members_for(grassroots, rows[1:])
    services.retry_lines(batch_id=batch.pk, line_ids=[held.pk], user=employer.approver, now=timezone.now())
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    assert admin.balance(wallet_id=rows[1][3]) == builders.net_fen(rows[1])
    assert union_money(batch, union.PURPOSE_DUES) == 2 * 2_500
    assert check_ledger().problems == []


@pytest.mark.django_db(transaction=True)
def test_a_retry_needs_the_union_money_of_its_lines_too(employer, grassroots, monkeypatch):
    """A retried member's line brings its dues and union funds, remitted once it is paid: a wallet holding only the
    salary paid it and left the union's transfers to fail (a failed payroll remittance is not collected again)."""
    from types import SimpleNamespace

    rows = staff(employer, 2)
    members_for(grassroots, rows)
    batch = approved_and_funded(employer, rows)
    employer.sandbox.admin.set_status(wallet_id=rows[0][3], status="frozen")
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PARTIALLY_PAID
    employer.sandbox.admin.set_status(wallet_id=rows[0][3], status="active")
    line = batch.lines.get(wallet_id=rows[0][3])
    union_fen = line.deductions["union_dues"] + union.funds_split(gross_fen=line.gross_fen, funds_rate_bp=200,
                                                                   grassroots_share_bp=6_000).total_fen
    balance = line.net_fen + union_fen - 1
    monkeypatch.setattr(services, "operator_balance", lambda wallet: SimpleNamespace(balance_fen=balance))
    with pytest.raises(services.PayrollError) as caught:
        services.retry_lines(batch_id=batch.pk, line_ids=[line.pk], user=employer.operator_user, now=timezone.now())
    assert caught.value.code == "insufficient_funds"
    balance += 1
    services.retry_lines(batch_id=batch.pk, line_ids=[line.pk], user=employer.operator_user, now=timezone.now())
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    assert union_money(batch, union.PURPOSE_DUES) == 2 * 2_500
