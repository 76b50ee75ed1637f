"""Employers' declarations through the services: computing, the workflow, maker-checker, payment faults."""
import pytest
from django.utils import timezone

from social_security import services
from social_security.models import Declaration, DeclarationState as S
from social_security.services import DeclarationRefused, LineInput, SocialError
from tests import factories as f
from treasury.access.errors import AccessDenied, MakerCheckerViolation
from treasury.models import Transfer, TransferState
from treasury.services.ledger import check_ledger

# 2026-03 in 370100: floor 4,680.00, ceiling 23,400.00; employer 16+7+0.7+0.2 %, individual 8+2+0.3 %.
ROWS = [
    LineInput(name="张三", resident_id="110101199003071233", base_fen=800000),    # inside the range
    LineInput(name="李四", resident_id="310104198511124567", base_fen=350000),    # below the floor
    LineInput(name="王五", resident_id="11010519491231002X", base_fen=3000000),   # above the ceiling
]
# Hand-computed: 8,000.00 -> employer 1,280+560+56+16 = 1,912.00, individual 640+160+24 = 824.00
#                4,680.00 -> employer 1,118.52, individual 482.04
#               23,400.00 -> employer 3,744+1,638+163.80+46.80 = 5,592.60, individual 1,872+468+70.20 = 2,410.20
EMPLOYER_TOTAL = 191200 + 111852 + 559260
INDIVIDUAL_TOTAL = 82400 + 48204 + 241020


def now():
    return timezone.now()


def prepare(world, rows=ROWS, period="2026-03"):
    return services.create_declaration(user=world.operator_user, region_code="370100", period=period, rows=rows,
                                       now=now())


def confirmed(world, fake_tips):
    declaration = prepare(world)
    services.declare(declaration_id=declaration.pk, user=world.approver, now=now())
    declaration.refresh_from_db()
    assert declaration.state == S.CONFIRMED, declaration.state_reason
    return declaration


def test_lines_are_clamped_with_notes_and_computed_to_the_fen(world):
    declaration = prepare(world)
    assert declaration.state == S.DRAFT and declaration.line_count == 3
    assert (declaration.employer_total_fen, declaration.individual_total_fen) == (EMPLOYER_TOTAL, INDIVIDUAL_TOTAL)
    assert declaration.total_fen == EMPLOYER_TOTAL + INDIVIDUAL_TOTAL
    lines = {line.name: line for line in declaration.lines.all()}
    assert (lines["李四"].declared_base_fen, lines["李四"].base_fen) == (350000, 468000)
    assert lines["李四"].base_note == "低于下限，按下限 ¥4,680.00 计 (below floor)"
    assert lines["王五"].base_note == "高于上限，按上限 ¥23,400.00 计 (above ceiling)"
    assert lines["张三"].base_note == ""
    assert (lines["王五"].unemployment_employer_fen, lines["王五"].work_injury_employer_fen) == (16380, 4680)
    assert (lines["张三"].employer_fen, lines["张三"].individual_fen) == (191200, 82400)


def test_the_mid_year_rate_change_applies_from_july(world):
    june = prepare(world, rows=ROWS[:1], period="2026-06")
    july = prepare(world, rows=ROWS[:1], period="2026-07")
    # 8,000.00: unemployment 0.7% -> 0.5% employer, 0.3% -> 0.5% individual; work injury 0.2% -> 0.4%
    assert july.employer_total_fen - june.employer_total_fen == -1600 + 1600
    assert july.individual_total_fen - june.individual_total_fen == 1600
    assert july.lines.get().work_injury_employer_fen == 3200


def test_every_line_problem_is_reported_and_nothing_is_stored(world):
    rows = [ROWS[0], LineInput(name="", resident_id="110101199003071234", base_fen=0),
            LineInput(name="赵六", resident_id="110101199003071233", base_fen=500000)]
    with pytest.raises(DeclarationRefused) as refused:
        prepare(world, rows=rows)
    found = {(p.line, p.column, p.code) for p in refused.value.problems}
    assert found == {(2, "姓名", "required"), (2, "身份证号", "id_checksum"), (2, "缴费基数", "base_not_positive"),
                     (3, "身份证号", "duplicate_resident_id")}
    assert not Declaration.objects.exists()


def test_one_open_declaration_per_employer_region_and_period(world):
    prepare(world)
    with pytest.raises(SocialError) as again:
        prepare(world)
    assert again.value.code == "already_declared"


def test_maker_checker_and_roles(world, fake_tips):
    declaration = prepare(world)
    with pytest.raises(AccessDenied):  # an operator does not declare
        services.declare(declaration_id=declaration.pk, user=world.operator_user, now=now())
    with pytest.raises(AccessDenied):  # nor does another employer's approver
        services.declare(declaration_id=declaration.pk, user=world.other_approver, now=now())
    with pytest.raises(AccessDenied):  # an approver does not prepare
        services.create_declaration(user=world.approver, region_code="370100", period="2026-04", rows=ROWS, now=now())
    both = f.make_user(role="employer_operator", organization=world.employer)
    both.groups.add(*world.approver.groups.all())
    mine = services.create_declaration(user=both, region_code="370100", period="2026-05", rows=ROWS, now=now())
    with pytest.raises(MakerCheckerViolation):
        services.declare(declaration_id=mine.pk, user=both, now=now())
    assert fake_tips.declarations == []


def test_declared_confirmed_paid_with_one_transfer_and_a_receipt_trail(world, fake_tips):
    declaration = confirmed(world, fake_tips)
    assert declaration.voucher_no.startswith("SI202603") and declaration.confirmed_total_fen == declaration.total_fen
    (sent,) = fake_tips.declarations
    assert (sent.person_num, sent.all_amount_fen, sent.decl_no) == (3, declaration.total_fen, declaration.declaration_no)
    assert {t.ins_type: t.employer_amount_fen for t in sent.types}["work_injury"] == 1600 + 936 + 4680
    before = world.balance(world.wallet)
    services.pay_declaration(declaration_id=declaration.pk, user=world.approver, now=now())
    declaration.refresh_from_db()
    assert declaration.state in (S.PAYING, S.PAID)
    assert services.finish_paying_declarations(now=now()) == 1
    declaration.refresh_from_db()
    assert declaration.state == S.PAID and declaration.payment_notified_at is not None
    transfer = declaration.transfer
    assert transfer.state == TransferState.SETTLED and transfer.amount_fen == declaration.total_fen
    assert transfer.payee_id == world.fund_wallet.pk and transfer.payer_id == world.wallet.pk
    assert transfer.idempotency_key == f"social:{declaration.pk}:1"
    assert world.balance(world.wallet) == before - declaration.total_fen
    assert world.balance(world.fund_wallet) == declaration.total_fen
    (notice,) = fake_tips.payments
    assert (notice.vou_no, notice.amount_fen) == (declaration.voucher_no, declaration.total_fen)
    with pytest.raises(SocialError) as again:
        services.pay_declaration(declaration_id=declaration.pk, user=world.approver, now=now())
    assert again.value.code == "not_payable"
    assert check_ledger().problems == []


def test_the_preparer_never_pays_and_paying_needs_an_active_agreement(world, fake_tips):
    declaration = confirmed(world, fake_tips)
    with pytest.raises(AccessDenied):
        services.pay_declaration(declaration_id=declaration.pk, user=world.operator_user, now=now())
    agreement = services.active_agreement(declaration=declaration)
    from tax import services as tax_services

    tax_services.suspend_agreement(agreement_id=agreement.pk, user=world.tax_staff, reason="核查", now=now())
    with pytest.raises(SocialError) as refused:
        services.pay_declaration(declaration_id=declaration.pk, user=world.approver, now=now())
    assert refused.value.code == "no_agreement"
    declaration.refresh_from_db()
    assert declaration.state == S.CONFIRMED and not Transfer.objects.exists()


def test_a_refusal_comes_back_with_its_reason_and_goes_back_to_draft_for_a_fix(world, fake_tips):
    fake_tips.refuse_next.append("人数与参保登记不符 (persons differ from registration)")
    declaration = prepare(world)
    services.declare(declaration_id=declaration.pk, user=world.approver, now=now())
    declaration.refresh_from_db()
    assert declaration.state == S.REJECTED and "人数与参保登记不符" in declaration.state_reason
    services.reopen_declaration(declaration_id=declaration.pk, user=world.operator_user, now=now())
    line = declaration.lines.get(name="李四")
    services.remove_line(declaration_id=declaration.pk, user=world.operator_user, line_id=line.pk, now=now())
    services.add_line(declaration_id=declaration.pk, user=world.operator_user, name="李四",
                      resident_id="310104198511124567", base_fen=500000, now=now())
    services.declare(declaration_id=declaration.pk, user=world.approver, now=now())
    declaration.refresh_from_db()
    assert declaration.state == S.CONFIRMED and declaration.line_count == 3
    fixed = declaration.lines.get(name="李四")
    assert (fixed.line_no, fixed.base_fen, fixed.base_note) == (4, 500000, "")


def test_an_unreachable_tax_system_leaves_it_declared_until_the_sweep(world, fake_tips):
    fake_tips.unreachable = 1
    declaration = prepare(world)
    services.declare(declaration_id=declaration.pk, user=world.approver, now=now())
    declaration.refresh_from_db()
    assert declaration.state == S.DECLARED
    assert services.resend_pending(now=now())["declarations"] == 1
    declaration.refresh_from_db()
    assert declaration.state == S.CONFIRMED and len(fake_tips.declarations) == 2


def test_a_failed_payment_goes_back_to_confirmed_and_a_retry_pays_once(world, fake_tips):
    declaration = confirmed(world, fake_tips)
    world.ecny.admin.set_status(wallet_id=world.wallet.wallet_id, status="frozen")
    services.pay_declaration(declaration_id=declaration.pk, user=world.approver, now=now())
    services.finish_paying_declarations(now=now())
    declaration.refresh_from_db()
    assert declaration.state == S.CONFIRMED and "缴费失败" in declaration.state_reason
    assert declaration.transfer.state == TransferState.FAILED
    world.ecny.admin.set_status(wallet_id=world.wallet.wallet_id, status="active")
    before = world.balance(world.wallet)
    services.pay_declaration(declaration_id=declaration.pk, user=world.second_approver, now=now())
    services.finish_paying_declarations(now=now())
    declaration.refresh_from_db()
    assert declaration.state == S.PAID and declaration.payment_attempts == 2
    assert declaration.transfer.idempotency_key == f"social:{declaration.pk}:2"
    assert world.balance(world.wallet) == before - declaration.total_fen
    assert world.balance(world.fund_wallet) == declaration.total_fen
    assert Transfer.objects.filter(state=TransferState.SETTLED).count() == 1
    assert check_ledger().problems == []


def test_an_unknown_outcome_stays_paying_until_the_operator_answers_and_is_collected_once(world, fake_tips, settings):
    from adapters.ecny.client import get_operator_client
    from treasury.services.transfers import recover_unconfirmed_transfers

    declaration = confirmed(world, fake_tips)
    settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 0.5
    get_operator_client.cache_clear()
    world.ecny.admin.set_fault("timeout_after_apply", count=1, sleep_seconds=1.5)
    before = world.balance(world.wallet)
    services.pay_declaration(declaration_id=declaration.pk, user=world.approver, now=now())
    services.finish_paying_declarations(now=now())
    declaration.refresh_from_db()
    assert declaration.state == S.PAYING and declaration.transfer.state == TransferState.UNKNOWN
    with pytest.raises(SocialError):  # no second payment while the first is undecided
        services.pay_declaration(declaration_id=declaration.pk, user=world.approver, now=now())
    recover_unconfirmed_transfers(now=now())
    services.finish_paying_declarations(now=now())
    declaration.refresh_from_db()
    assert declaration.state == S.PAID
    assert world.balance(world.wallet) == before - declaration.total_fen
    assert Transfer.objects.count() == 1


def test_cancel_only_before_declaring(world, fake_tips):
    declaration = prepare(world)
    with pytest.raises(SocialError):
        services.cancel_declaration(declaration_id=declaration.pk, user=world.operator_user, reason="", now=now())
    services.cancel_declaration(declaration_id=declaration.pk, user=world.operator_user, reason="重做", now=now())
    declaration.refresh_from_db()
    assert declaration.state == S.CANCELLED
    again = prepare(world)  # a cancelled one does not block a new declaration of the month
    services.declare(declaration_id=again.pk, user=world.approver, now=now())
    with pytest.raises(SocialError):
        services.cancel_declaration(declaration_id=again.pk, user=world.operator_user, reason="x", now=now())


def test_reconciliation_moves_matched_payments_on_and_reports_the_rest(world, fake_tips):
    from social_security.reconciliation import reconcile_day

    paid = confirmed(world, fake_tips)
    services.pay_declaration(declaration_id=paid.pk, user=world.approver, now=now())
    services.finish_paying_declarations(now=now())
    paid.refresh_from_db()
    day = timezone.localdate(paid.transfer.settled_at)
    run = reconcile_day(check_date=day, now=now())
    paid.refresh_from_db()
    assert (run.matched_count, run.discrepancy_count) == (1, 0) and paid.state == S.RECONCILED
    # Planted differences: an operator line we know nothing of, a changed amount, a notice not acknowledged.
    key = paid.transfer.idempotency_key
    rows = [(key, "credit", paid.total_fen - 1, "transfer"), ("social:999:1", "credit", 500, "transfer"),
            ("payroll:1:1", "credit", 100, "transfer")]
    run = reconcile_day(check_date=day, now=now(), statement_rows=rows)
    assert set(run.results.exclude(outcome="matched").values_list("outcome", flat=True)) == {
        "amount_mismatch", "missing_ours"}
    assert run.runs == 2
    Declaration.objects.filter(pk=paid.pk).update(payment_notified_at=None)
    run = reconcile_day(check_date=day, now=now(), statement_rows=[(key, "credit", paid.total_fen, "transfer")])
    assert list(run.results.exclude(outcome="matched").values_list("outcome", flat=True)) == ["not_acknowledged"]
    run = reconcile_day(check_date=day, now=now(), statement_rows=[])
    assert list(run.results.exclude(outcome="matched").values_list("outcome", flat=True)) == ["missing_operator"]


def test_a_resident_id_a_spreadsheet_program_stored_as_a_number_is_refused_with_how_to_fix_it():
    """15 significant digits are all a spreadsheet number keeps: the ID's last digits are gone."""
    import io

    from openpyxl import load_workbook

    from social_security import parsing

    workbook = load_workbook(io.BytesIO(parsing.template_xlsx()))
    sheet = workbook.worksheets[0]
    id_cells = [row[1] for row in sheet.iter_rows() if isinstance(row[1].value, str) and row[1].value[:17].isdigit()
                and len(row[1].value) == 18]
    id_cells[0].value = float(id_cells[0].value)
    buffer = io.BytesIO()
    workbook.save(buffer)
    parsed = parsing.parse_declaration_file(buffer.getvalue(), filename="declaration.xlsx")
    assert [(p.line, p.code) for p in parsed.problems] == [(id_cells[0].row, "number_lost_digits")]
    assert len(parsed.lines) == len(id_cells) - 1


@pytest.mark.parametrize("header", ["姓名,身份证号,name", "name,姓名,缴费基数", "姓名,name,缴费基数"])
def test_a_header_lacking_a_column_is_one_problem_of_its_row_not_a_crash(header):
    """A column named twice (in Chinese and English) leaves another missing: the file is refused with the
    missing column named once, on the header row."""
    from social_security import parsing

    data = (f"单位统一社会信用代码,91350100M000100Y43\n费款所属期,2026-03\n人数,1\n\n{header}\n"
            "张三,110101199003071233,8000.00\n").encode()
    parsed = parsing.parse_declaration_file(data, filename="declaration.csv")
    assert [p.code for p in parsed.problems] == ["column_duplicate", "column_missing"]
    assert {p.line for p in parsed.problems} == {5}


def test_each_step_of_a_declaration_waits_on_the_dashboard_for_the_person_who_takes_it(world, fake_tips):
    from treasury.waiting import waiting_for

    def waiting(user) -> dict[str, int]:
        return {item.key: item.count for item in waiting_for(user)}

    fake_tips.refuse_next.append("人数与参保登记不符 (persons differ from registration)")
    declaration = prepare(world)
    assert waiting(world.approver) == {"social_to_declare": 1} and waiting(world.operator_user) == {}
    assert waiting(world.other_approver) == {}  # another employer's
    services.declare(declaration_id=declaration.pk, user=world.approver, now=now())
    assert waiting(world.operator_user) == {"social_sent_back": 1} and waiting(world.approver) == {}
    services.reopen_declaration(declaration_id=declaration.pk, user=world.operator_user, now=now())
    services.declare(declaration_id=declaration.pk, user=world.approver, now=now())
    assert waiting(world.approver) == waiting(world.second_approver) == {"social_to_pay": 1}
    Declaration.objects.filter(pk=declaration.pk).update(prepared_by=world.approver)
    assert waiting(world.approver) == {} and waiting(world.second_approver) == {"social_to_pay": 1}  # not one's own


def test_only_the_preparer_changes_a_draft_so_no_one_declares_lines_they_put_in(world, fake_tips, client):
    """Maker-checker: someone who both prepares and approves must not add (or take out) lines of another person's
    draft and then declare it alone; an administrator is no exception. They may still declare it unchanged."""
    both = f.make_user(role="employer_operator", organization=world.employer)
    both.groups.add(*world.approver.groups.all())
    admin = f.make_user(role="admin", organization=world.employer)
    declaration = prepare(world, rows=ROWS[:1])
    for someone in (both, admin):
        with pytest.raises(AccessDenied) as refused:
            services.add_line(declaration_id=declaration.pk, user=someone, name="李四",
                              resident_id="310104198511124567", base_fen=2_000_000_00, now=now())
        assert refused.value.code == "not_preparer"
        with pytest.raises(AccessDenied):
            services.remove_line(declaration_id=declaration.pk, user=someone,
                                 line_id=declaration.lines.get().pk, now=now())
    declaration.refresh_from_db()
    assert declaration.line_count == 1 and declaration.total_fen == 191200 + 82400
    # The page offers no editing to them, and a form posted all the same changes nothing.
    client.force_login(both)
    page = client.get(f"/social/declarations/{declaration.pk}/").content.decode()
    assert 'data-action="remove-line"' not in page
    client.post(f"/social/declarations/{declaration.pk}/lines/",
                {"name": "李四", "resident_id": "310104198511124567", "base": "20000.00"})
    assert Declaration.objects.get(pk=declaration.pk).line_count == 1
    # The preparer edits; then the other person declares what the preparer made.
    services.add_line(declaration_id=declaration.pk, user=world.operator_user, name="李四",
                      resident_id="310104198511124567", base_fen=500000, now=now())
    services.declare(declaration_id=declaration.pk, user=both, now=now())
    declaration.refresh_from_db()
    assert declaration.state == S.CONFIRMED and declaration.line_count == 2


def test_a_rejected_declaration_reopened_by_someone_else_is_still_changed_only_by_its_preparer(world, fake_tips):
    fake_tips.refuse_next.append("人数与参保登记不符")
    both = f.make_user(role="employer_operator", organization=world.employer)
    both.groups.add(*world.approver.groups.all())
    declaration = prepare(world, rows=ROWS[:1])
    services.declare(declaration_id=declaration.pk, user=world.approver, now=now())
    services.reopen_declaration(declaration_id=declaration.pk, user=both, now=now())
    with pytest.raises(AccessDenied):
        services.add_line(declaration_id=declaration.pk, user=both, name="王五", resident_id="11010519491231002X",
                          base_fen=3000000, now=now())
    assert Declaration.objects.get(pk=declaration.pk).line_count == 1


def test_two_tabs_making_the_same_month_at_once_get_already_declared_not_a_crash(world, monkeypatch):
    """The second request passes the check before the first commits: the database's one-open-declaration
    constraint refuses it, and the clerk reads why (simulated by a check that finds nothing)."""
    prepare(world)
    monkeypatch.setattr(services, "OPEN_STATES", ())  # the check sees no declaration, as in the race
    with pytest.raises(SocialError) as again:
        prepare(world)
    assert again.value.code == "already_declared"
    assert Declaration.objects.count() == 1


def test_a_declared_base_too_large_to_store_is_a_line_problem(world, client):
    client.force_login(world.operator_user)
    response = client.post("/api/v1/social/declarations/", {"region": "370100", "period": "2026-03", "lines": [
        {"name": "张三", "resident_id": "110101199003071233", "base": "8000.00"},
        {"name": "王五", "resident_id": "11010519491231002X", "base": "99999999999999999999"}]},
        content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "lines_refused"
    assert [(p["line"], p["column"], p["code"]) for p in body["problems"]] == [(2, "缴费基数", "amount_too_large")]
    assert not Declaration.objects.exists()


def test_money_that_came_back_before_the_payment_was_recorded_is_paid_again_once(world, fake_tips, settings):
    """The operator applied the payment but the answer was lost; before recovery asked, the money came back to the
    employer (returned). The declaration is not paid (the fund holds nothing): it is confirmed again with the
    reason, and paying again collects it once, under a new key."""
    from adapters.ecny.client import get_operator_client
    from treasury.services.transfers import recover_unconfirmed_transfers

    declaration = confirmed(world, fake_tips)
    before = world.balance(world.wallet)
    settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 0.5
    get_operator_client.cache_clear()
    world.ecny.admin.set_fault("timeout_after_apply", count=1, sleep_seconds=1.5)
    services.pay_declaration(declaration_id=declaration.pk, user=world.approver, now=now())
    declaration.refresh_from_db()
    world.ecny.admin.return_transfer(request_id=declaration.transfer.idempotency_key, reason="收款账户状态异常")
    recover_unconfirmed_transfers(now=now(), older_than_seconds=0)
    assert Transfer.objects.get(pk=declaration.transfer_id).state == TransferState.RETURNED
    services.finish_paying_declarations(now=now())
    declaration.refresh_from_db()
    assert declaration.state == S.CONFIRMED and "缴费失败" in declaration.state_reason
    assert declaration.payment_notified_at is None and fake_tips.payments == []
    assert world.balance(world.wallet) == before
    services.pay_declaration(declaration_id=declaration.pk, user=world.approver, now=now())
    services.finish_paying_declarations(now=now())
    declaration.refresh_from_db()
    assert declaration.state == S.PAID and declaration.transfer.idempotency_key == f"social:{declaration.pk}:2"
    assert world.balance(world.wallet) == before - declaration.total_fen
    assert world.balance(world.fund_wallet) == declaration.total_fen
    assert check_ledger().problems == []


@pytest.mark.parametrize("period", ["0000-03", "٢٠٢٦-03", "1899-12"])
def test_a_period_the_premium_message_cannot_carry_is_a_period_format_error(world, period):
    """Year 0000 was a server error (no such date); digits of another script (\\d) made a declaration whose
    5101 message could never be written; 1899 neither."""
    with pytest.raises(SocialError) as refused:
        prepare(world, period=period)
    assert refused.value.code == "period_format"
    assert not Declaration.objects.exists()


@pytest.mark.parametrize("period", ["0000-03", "٢٠٢٦-03"])
def test_a_files_period_in_no_calendar_or_other_digits_is_a_problem_of_its_row(period):
    from social_security import parsing

    data = f"费款所属期,{period}\n姓名,身份证号,缴费基数\n张三,110101199003071233,8000.00\n".encode()
    parsed = parsing.parse_declaration_file(data, filename="declaration.csv")
    assert [(p.line, p.code) for p in parsed.problems] == [(1, "period_format")]
    assert parsed.period is None


def test_a_control_character_in_a_name_is_a_problem_of_its_line():
    from social_security import parsing

    data = "姓名,身份证号,缴费基数\n张\x01三,110101199003071233,8000.00\n".encode()
    parsed = parsing.parse_declaration_file(data, filename="declaration.csv")
    assert [(p.line, p.column, p.code) for p in parsed.problems] == [(2, "姓名", "control_character")]
