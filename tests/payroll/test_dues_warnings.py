"""Union dues in a payroll file that are not what the union's rules give: a warning on the line (never a refusal,
never a hold), counted on the batch, shown on the batch page, in the API and by `payroll_import`, and paid."""
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from payroll import parsing, services, union
from payroll.models import BatchState, DuesCall, PayrollBatch, UnionMember, UnionSettings
from tests.clients import api_as, logged_in
from tests import factories as f
from tests.payroll import builders
from tests.payroll.helpers import csv_file, staff, upload
from treasury.access import roles
from treasury.models import TransferState

MEMBER_ID = builders.resident_id(1)
UNKNOWN_REGION_ID = "932682198501010017"  # a valid number whose region is a warning (foreigners' permanent residence)

# Template column order (builders.employee_row): amounts from column 4.
BASIC, ALLOWANCES, SUBSIDIES, BONUS, OTHER_PAY, GROSS = 4, 5, 6, 7, 8, 9
DEDUCTION_COLUMNS, DUES, NET = (10, 11, 12, 13, 14), 13, 15


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def fen(text: str) -> int:
    whole, part = text.split(".")
    return int(whole) * 100 + int(part)


def with_pay(row, *, basic_fen: int, dues_fen: int) -> list[str]:
    """The row with this basic wage and union dues, its gross and net following."""
    row = list(row)
    row[BASIC], row[DUES] = yuan(basic_fen), yuan(dues_fen)
    gross = sum(fen(row[i]) for i in (BASIC, ALLOWANCES, SUBSIDIES, BONUS, OTHER_PAY))
    row[GROSS] = yuan(gross)
    row[NET] = yuan(gross - sum(fen(row[i]) for i in DEDUCTION_COLUMNS))
    return row


def parsed_line(*, basic=0, allowances=0, bonus=0, dues=0, resident_id=MEMBER_ID, line=7) -> parsing.PayrollLine:
    gross = basic + allowances + bonus
    return parsing.PayrollLine(line, "E0000001", "张三", resident_id, builders.wallet_id(1), basic, allowances, 0,
                               bonus, 0, gross, 0, 0, 0, dues, 0, gross - dues)


def check(*, rate_bp=50, components=(), members=(MEMBER_ID,)) -> union.PayrollDuesCheck:
    settings = UnionSettings(dues_rate_bp=rate_bp, dues_base_components=list(components))
    return union.PayrollDuesCheck(settings=settings, members=set(members))


# ---------------------------------------------------------------------------------------------
# The expected dues, to the fen
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate_bp,components,basic,allowances,bonus,expected", [
    (50, (), 600_000, 0, 0, 3_000),  # 6,000 yuan basic wage x 0.5% = 30.00
    (50, (), 876_543, 50_000, 90_000, 4_380),  # 8,765.43: 8,760 counted (below 10 yuan is not), the rest not in the base
    (15, (), 8_003_000, 0, 0, 12_005),  # 80,030 x 0.15% = 120.045 -> 120.05 (half up; half even would give 120.04)
    (25, (), 1_000, 0, 0, 3),  # 10 yuan x 0.25% = 2.5 fen -> 3
    (33, (), 101_000, 0, 0, 333),  # 1,010 x 0.33% = 333.3 fen -> 333
    (50, ("basic_wage", "allowances"), 500_000, 100_000, 200_000, 3_000),  # the union's base: wage and allowances
    (100, ("basic_wage", "bonus"), 500_000, 100_000, 200_000, 7_000),  # another rate and base: 1% of 7,000
    (50, (), 0, 0, 300_000, 0),  # a bonus-only line: no dues base, no dues
])
def test_expected_dues_to_the_fen(rate_bp, components, basic, allowances, bonus, expected):
    dues_check = check(rate_bp=rate_bp, components=components)
    line = parsed_line(basic=basic, allowances=allowances, bonus=bonus, dues=expected)
    assert dues_check.expected_fen(dues_check.base_fen(line)) == expected
    assert dues_check.warning(line) is None  # the union's own amount: nothing to say
    assert dues_check.warned == {}
    off_by_a_fen = parsed_line(basic=basic, allowances=allowances, bonus=bonus, dues=expected + 1)
    warning = dues_check.warning(off_by_a_fen)
    assert warning is not None and yuan(expected) in warning and yuan(expected + 1) in warning
    assert dues_check.warned == {MEMBER_ID: 7}


def test_the_warning_names_what_was_withheld_and_what_the_rules_give():
    dues_check = check()
    wrong = dues_check.warning(parsed_line(basic=600_550, dues=3_003))  # 0.5% of 6,005.50 without the 10-yuan rule
    assert wrong == ("代扣工会会费30.03元，按工会规定应为30.00元（会费基数6000.00元的0.5%，不足10元部分不计） "
                     "(union dues withheld 30.03 yuan; the union's rules give 30.00 yuan: 0.5% of the dues base "
                     "6000.00 yuan, the part below 10 yuan not counted)")
    missing = dues_check.warning(parsed_line(basic=600_000, dues=0))
    assert missing == ("未代扣工会会费，按工会规定应为30.00元（会费基数6000.00元的0.5%） (no union dues withheld; the "
                       "union's rules give 30.00 yuan: 0.5% of the dues base 6000.00 yuan)")


def test_people_who_are_not_members_are_not_checked():
    dues_check = check()
    assert dues_check.warning(parsed_line(basic=600_000, dues=0, resident_id=builders.resident_id(2))) is None
    assert dues_check.warning(parsed_line(basic=600_000, dues=1, resident_id=builders.resident_id(2))) is None
    assert dues_check.warned == {}


# ---------------------------------------------------------------------------------------------
# At upload, and paying
# ---------------------------------------------------------------------------------------------


def plain_resident_ids(count: int) -> list[str]:
    """Resident IDs without a warning of their own (some of the builders' regions did not exist in their birth year)."""
    from treasury.identifiers import validate_resident_id

    numbers = (builders.resident_id(i) for i in range(1_000, 2_000))
    return [number for number in numbers if not validate_resident_id(number).warnings][:count]


def add_members(settings, rows):
    return [UnionMember.objects.create(union=settings, employee_no=r[0], name=r[1], resident_id=r[2], wallet_id=r[3],
                                       dues_base_fen=fen(r[BASIC])) for r in rows]


def mixed_rows(employer, grassroots):
    """Six lines of 2025-06: right dues, too little, none, a non-member, a member whose month is paid already (no
    dues in the file; their resident ID has a region warning of its own), dues on the base before the 10-yuan rule."""
    rows = staff(employer, 6)
    for row, number in zip(rows, plain_resident_ids(6)):
        row[2] = number
    rows[4][2] = UNKNOWN_REGION_ID
    rows = [with_pay(rows[0], basic_fen=600_000, dues_fen=3_000),
            with_pay(rows[1], basic_fen=600_000, dues_fen=2_500),
            with_pay(rows[2], basic_fen=600_000, dues_fen=0),
            with_pay(rows[3], basic_fen=600_000, dues_fen=0),
            with_pay(rows[4], basic_fen=600_000, dues_fen=0),
            with_pay(rows[5], basic_fen=600_550, dues_fen=3_003)]
    members = add_members(grassroots, rows[:3] + rows[4:])
    DuesCall.objects.create(union=grassroots, member=members[3], period="2025-06", amount_fen=3_000,
                            source=DuesCall.Source.CALL, created_at=timezone.now())
    return rows


@pytest.mark.django_db(transaction=True)
def test_upload_warns_dues_other_than_the_rules_and_pays_them_as_the_file_says(employer, grassroots):
    rows = mixed_rows(employer, grassroots)
    batch = upload(employer, rows)
    assert batch.state == BatchState.VALIDATED and batch.problem_count == 0 and batch.held_count == 0
    warnings = {line.resident_id: line.warnings for line in batch.lines.all()}
    assert warnings[rows[0][2]] == [] and warnings[rows[3][2]] == []
    assert len(warnings[rows[1][2]]) == 1 and "代扣工会会费25.00元，按工会规定应为30.00元" in warnings[rows[1][2]][0]
    assert len(warnings[rows[2][2]]) == 1 and warnings[rows[2][2]][0].startswith("未代扣工会会费，按工会规定应为30.00元")
    # The member whose month is paid owes nothing here: only the resident ID's own warning stays.
    assert len(warnings[UNKNOWN_REGION_ID]) == 1 and "region" in warnings[UNKNOWN_REGION_ID][0]
    assert len(warnings[rows[5][2]]) == 1 and "应为30.00元" in warnings[rows[5][2]][0]
    assert batch.warning_count == 4

    now = timezone.now()
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    services.approve_batch(batch_id=batch.pk, user=employer.approver, now=now)
    services.fund_batch(batch_id=batch.pk, user=employer.approver, now=now)
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    batch = services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
    assert batch.state == BatchState.PAID
    assert set(batch.lines.values_list("transfer__state", flat=True)) == {TransferState.SETTLED}
    # The dues are remitted as the file withheld them, warned or not.
    remitted = dict(DuesCall.objects.filter(source=DuesCall.Source.PAYROLL).values_list("member__resident_id",
                                                                                        "amount_fen"))
    assert remitted == {rows[0][2]: 3_000, rows[1][2]: 2_500, rows[5][2]: 3_003}


@pytest.mark.django_db(transaction=True)
def test_no_dues_warning_when_the_union_collects_by_call_or_there_is_no_union(employer, grassroots):
    rows = [with_pay(r, basic_fen=600_000, dues_fen=0) for r in staff(employer, 2)]
    for row, number in zip(rows, plain_resident_ids(2)):
        row[2] = number
    add_members(grassroots, rows)
    assert upload(employer, rows).warning_count == 2
    grassroots.dues_in_payroll = False
    grassroots.save()
    later = [with_pay(r, basic_fen=600_100, dues_fen=0) for r in rows]  # another file: the first is not cancelled
    batch = upload(employer, later)
    assert batch.state == BatchState.VALIDATED and batch.warning_count == 0
    assert list(batch.lines.values_list("warnings", flat=True)) == [[], []]


@pytest.mark.django_db(transaction=True)
def test_the_unions_rules_decide_the_expected_dues(employer, grassroots):
    grassroots.dues_rate_bp, grassroots.dues_base_components = 100, ["basic_wage", "allowances"]
    grassroots.save()
    rows = staff(employer, 2)  # allowances 500.00 each
    rows = [with_pay(rows[0], basic_fen=600_000, dues_fen=6_500), with_pay(rows[1], basic_fen=600_000, dues_fen=3_000)]
    add_members(grassroots, rows)
    batch = upload(employer, rows)
    by_row = {line.resident_id: line.warnings for line in batch.lines.all()}
    assert by_row[rows[0][2]] == []
    assert by_row[rows[1][2]] == ["代扣工会会费30.00元，按工会规定应为65.00元（会费基数6500.00元的1%） (union dues withheld "
                                  "30.00 yuan; the union's rules give 65.00 yuan: 1% of the dues base 6500.00 yuan)"]


# ---------------------------------------------------------------------------------------------
# Shown: the batch page, the API, the command
# ---------------------------------------------------------------------------------------------


def warnings_panel(html: str) -> str:
    found = re.search(r'<section[^>]*data-testid="warnings".*?</section>', html, re.S)
    return found.group(0) if found else ""


@pytest.mark.django_db(transaction=True)
def test_the_batch_page_lists_the_warned_lines_only(employer, grassroots, monkeypatch):
    from django.core.files.uploadedfile import SimpleUploadedFile

    rows = mixed_rows(employer, grassroots)
    operator = logged_in(employer.operator_user)
    response = operator.post(reverse("payroll:upload"), {"file": SimpleUploadedFile("工资.csv", csv_file(rows))},
                             follow=True)
    batch = PayrollBatch.objects.get()
    assert any("4" in str(m) and ("提示" in str(m) or "warning" in str(m)) for m in response.context["messages"])
    html = response.content.decode()
    assert 'data-testid="warning-count"><a href="#warnings">4</a>' in html
    panel = warnings_panel(html)
    listed = re.findall(r'<tr data-line="(\d+)">', panel)
    by_id = {line.resident_id: line for line in batch.lines.all()}
    assert listed == [str(by_id[r[2]].line_no) for r in (rows[1], rows[2], rows[4], rows[5])]
    assert "代扣工会会费25.00元，按工会规定应为30.00元" in panel and rows[1][0] in panel
    assert rows[0][0] not in panel and rows[3][0] not in panel  # lines without warnings are not listed
    assert "张*" in panel and "张三" not in panel  # names masked as in the lines table

    # Pages of warnings for large batches: their own page number, the lines' page kept.
    monkeypatch.setattr("payroll.views.WARNINGS_PER_PAGE", 3)
    first = operator.get(reverse("payroll:batch-detail", args=[batch.pk]), {"page": "1"}).content.decode()
    assert "page=1&amp;warnings_page=2#warnings" in warnings_panel(first)
    second = warnings_panel(operator.get(reverse("payroll:batch-detail", args=[batch.pk]),
                                         {"warnings_page": "2"}).content.decode())
    assert re.findall(r'<tr data-line="(\d+)">', second) == [str(by_id[rows[5][2]].line_no)]

    # Auditors read them too; another employer never sees the batch.
    auditor = logged_in(f.make_user(role=roles.AUDITOR)).get(reverse("payroll:batch-detail", args=[batch.pk]))
    assert "代扣工会会费25.00元" in warnings_panel(auditor.content.decode())
    outsider = logged_in(f.make_user(role=roles.EMPLOYER_OPERATOR, organization=f.make_organization(name="乙")))
    assert outsider.get(reverse("payroll:batch-detail", args=[batch.pk]), {"warnings_page": "1"}).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_batch_without_warnings_shows_none(employer):
    batch = upload(employer, staff(employer, 2))
    assert batch.warning_count == 0
    html = logged_in(employer.operator_user).get(reverse("payroll:batch-detail", args=[batch.pk])).content.decode()
    assert 'data-testid="warning-count">0<' in html and 'data-testid="warnings"' not in html


@pytest.mark.django_db(transaction=True)
def test_the_api_gives_each_lines_warnings_and_the_batchs_count(employer, grassroots):
    rows = mixed_rows(employer, grassroots)
    batch = upload(employer, rows)
    api = api_as(employer.operator_user)
    url = f"/api/v1/payroll/batches/{batch.pk}"
    assert api.get(f"{url}/").json()["warning_count"] == 4
    assert api.get("/api/v1/payroll/batches/").json()["results"][0]["warning_count"] == 4
    lines = api.get(f"{url}/lines/").json()
    assert lines["count"] == 6
    by_employee = {line["employee_no"]: line["warnings"] for line in lines["results"]}
    assert by_employee[rows[0][0]] == [] and by_employee[rows[3][0]] == []
    assert by_employee[rows[1][0]][0].startswith("代扣工会会费25.00元，按工会规定应为30.00元")
    warned = api.get(f"{url}/lines/", {"with_warnings": "true"}).json()
    assert warned["count"] == 4
    assert [line["employee_no"] for line in warned["results"]] == [rows[i][0] for i in (1, 2, 4, 5)]
    assert all(line["warnings"] for line in warned["results"])
    assert api.get(f"{url}/lines/", {"with_warnings": "false"}).json()["count"] == 6
    assert api.get(f"{url}/lines/", {"with_warnings": "maybe"}).status_code == 400

    outsider = api_as(f.make_user(role=roles.EMPLOYER_OPERATOR, organization=f.make_organization(name="乙")))
    response = outsider.get(f"{url}/lines/", {"with_warnings": "true"})
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert outsider.get("/api/v1/payroll/batches/").json()["count"] == 0


@pytest.mark.django_db(transaction=True)
def test_payroll_import_prints_the_warning_count(employer, grassroots, tmp_path, capsys):
    from django.core.management import call_command

    good = tmp_path / "good.csv"
    good.write_bytes(csv_file(mixed_rows(employer, grassroots)))
    call_command("payroll_import", str(good), "--employer", employer.org.uscc, "--period", "2025-06")
    out = capsys.readouterr().out
    assert "validated: 6 lines in the file, 6 valid, 0 held, 0 rejected (0 problems), 4 with warnings;" in out
