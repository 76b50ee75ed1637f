"""Union member pages: list and search (IDs and wallets masked), add, edit, deactivate and reactivate (never
delete), CSV import that writes nothing while any line is wrong, trace events with personal data masked, and
who may do what: the union's and the employer's operators edit, approvers and auditors read, anyone else 404.
Wallets are checked with the sandbox operator over real HTTP."""
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from payroll import members
from payroll.models import UnionMember, UnionSettings
from tests import factories as f
from tests.payroll import builders
from tests.payroll.helpers import staff
from tests.payroll.test_pages_api import logged_in, messages_of
from treasury.access import roles
from treasury.models import Organization
from treasury.trace.models import TraceEvent

pytestmark = pytest.mark.django_db(transaction=True)

UNKNOWN_WALLET = "1000000009999999"  # never opened at the operator


def member_form(row, **changes) -> dict:
    """The add/edit form's fields for an employee row of the builders (holder name 张三)."""
    data = {"employee_no": row[0], "name": row[1], "resident_id": row[2], "wallet_id": row[3], "dues_base": "8000.00",
            "standing_authorisation": "on"}
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def members_csv(lines, *, encoding="utf-8-sig") -> bytes:
    rows = [["工号", "姓名", "身份证号", "钱包编号", "会费基数", "代扣授权"], *lines]
    return builders.to_csv(rows, encoding=encoding)


def csv_line(row, dues="8000.00", authorised="是"):
    return [row[0], row[1], row[2], row[3], dues, authorised]


def import_file(client, union, data: bytes):
    return client.post(reverse("payroll:union-members-import", args=[union.pk]),
                       {"file": SimpleUploadedFile("会员.csv", data, content_type="text/csv")})


def member_events(union):
    return list(TraceEvent.objects.filter(stream_key=f"union-{union.pk}-members").order_by("seq"))


# ---------------------------------------------------------------------------------------------
# One member at a time
# ---------------------------------------------------------------------------------------------


def test_operator_adds_edits_deactivates_and_reactivates_a_member(employer, grassroots):
    rows = staff(employer, 3)
    page = logged_in(employer.operator_user)
    members_url = reverse("payroll:union-members", args=[grassroots.pk])
    add_url = reverse("payroll:union-member-add", args=[grassroots.pk])
    html = page.get(reverse("payroll:union-detail", args=[grassroots.pk])).content.decode()
    assert members_url in html
    html = page.get(members_url).content.decode()
    assert add_url in html and 'data-testid="member-import"' in html

    # A wrong check digit and an unknown wallet: refused field by field, nothing written.
    bad_id = rows[0][2][:17] + ("0" if rows[0][2][17] != "0" else "1")
    response = page.post(add_url, member_form(rows[0], resident_id=bad_id))
    assert response.status_code == 400 and "身份证号校验位错误" in response.content.decode()
    response = page.post(add_url, member_form(rows[0], wallet_id=UNKNOWN_WALLET))
    assert response.status_code == 400 and "运营机构查无此钱包" in response.content.decode()
    response = page.post(add_url, member_form(rows[0], name="李四"))
    assert response.status_code == 400 and "姓名与钱包户名不一致" in response.content.decode()
    assert not UnionMember.objects.exists() and member_events(grassroots) == []

    response = page.post(add_url, member_form(rows[0]), follow=True)
    assert response.redirect_chain[-1][0] == members_url
    member = UnionMember.objects.get()
    assert (member.employee_no, member.name, member.resident_id, member.wallet_id) == tuple(rows[0][:4])
    assert member.dues_base_fen == 800_000 and member.standing_authorisation and member.active
    html = response.content.decode()
    assert f'data-member="{member.pk}"' in html
    assert member.resident_id not in html and member.wallet_id not in html  # masked in the list
    (added,) = member_events(grassroots)
    assert added.kind == "payroll.union_member.added" and added.subject_id == str(member.pk)
    assert added.actor == employer.operator_user.username
    assert added.data["resident_id"] != member.resident_id and added.data["resident_id"].endswith(member.resident_id[-4:])
    assert added.data["wallet_id"] != member.wallet_id and added.data["dues_base_fen"] == 800_000

    # The same person again is refused.
    response = page.post(add_url, member_form(rows[0], employee_no="E9"))
    assert response.status_code == 400 and "已是本工会会员" in response.content.decode()

    # Edit: employee no., dues base, authorisation; the resident ID is not a field any more.
    edit_url = reverse("payroll:union-member-edit", args=[grassroots.pk, member.pk])
    form_html = page.get(edit_url).content.decode()
    assert 'name="resident_id"' not in form_html and 'value="8000.00"' in form_html
    response = page.post(edit_url, member_form(rows[0], resident_id=None, employee_no="E-100", dues_base="9000.5",
                                               standing_authorisation=None))
    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.employee_no, member.dues_base_fen, member.standing_authorisation) == ("E-100", 900_050, False)
    changed = member_events(grassroots)[-1]
    assert changed.kind == "payroll.union_member.changed"
    assert changed.data == {"employee_no": "E-100", "dues_base_fen": 900_050, "standing_authorisation": False}

    # A new wallet is checked with the operator; a wallet of the member's (same holder name) is taken.
    response = page.post(edit_url, member_form(rows[0], resident_id=None, wallet_id=UNKNOWN_WALLET))
    assert response.status_code == 400 and "运营机构查无此钱包" in response.content.decode()
    assert UnionMember.objects.get().wallet_id == rows[0][3]
    assert page.post(edit_url, member_form(rows[0], resident_id=None, wallet_id=rows[1][3])).status_code == 302
    assert UnionMember.objects.get().wallet_id == rows[1][3]

    # Deactivate, then reactivate: never deleted, each traced once.
    active_url = reverse("payroll:union-member-active", args=[grassroots.pk, member.pk])
    response = page.post(active_url, {"active": "0", "query": "q=E-100"})
    assert response.status_code == 302 and response.url == members_url + "?q=E-100"
    assert UnionMember.objects.get().active is False
    html = page.get(members_url).content.decode()
    assert f'data-member="{member.pk}" data-active="false"' in html and 'data-action="reactivate"' in html
    page.post(active_url, {"active": "0"})  # twice: nothing more happens
    page.post(active_url, {"active": "1"})
    assert UnionMember.objects.get().active is True
    kinds = [e.kind for e in member_events(grassroots)]
    assert kinds[-2:] == ["payroll.union_member.deactivated", "payroll.union_member.reactivated"]
    assert kinds.count("payroll.union_member.deactivated") == 1


def test_members_are_searched_by_name_or_employee_no(employer, grassroots):
    for index, (name, employee_no) in enumerate([("王小明", "A001"), ("李华", "A002"), ("王芳", "B001")]):
        UnionMember.objects.create(union=grassroots, employee_no=employee_no, name=name,
                                   resident_id=builders.resident_id(index), wallet_id=builders.wallet_id(index),
                                   active=index != 2)
    page = logged_in(employer.approver)
    url = reverse("payroll:union-members", args=[grassroots.pk])

    def shown(**query):
        html = page.get(url, query).content.decode()
        return sorted(UnionMember.objects.get(pk=pk).employee_no for pk in re.findall(r'data-member="(\d+)"', html))

    assert shown() == ["A001", "A002", "B001"]
    assert shown(q="王") == ["A001", "B001"]
    assert shown(q="a00") == ["A001", "A002"]
    assert shown(q="王", state="active") == ["A001"]
    assert shown(state="inactive") == ["B001"]


# ---------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------


def test_import_with_any_bad_line_writes_nothing_and_reports_every_problem(employer, grassroots):
    rows = staff(employer, 8)
    UnionMember.objects.create(union=grassroots, employee_no="OLD", name=rows[7][1], resident_id=rows[7][2],
                               wallet_id=rows[7][3])
    bad_id = rows[1][2][:17] + ("0" if rows[1][2][17] != "0" else "1")
    lines = [
        csv_line(rows[0]),  # line 2: good
        csv_line([rows[1][0], rows[1][1], bad_id, rows[1][3]]),  # 3: check digit
        csv_line([rows[2][0], rows[2][1], rows[2][2], UNKNOWN_WALLET]),  # 4: wallet unknown to the operator
        csv_line(rows[3], dues="12.345"),  # 5: three decimals
        csv_line(rows[4], authorised="也许"),  # 6: neither 是 nor 否
        csv_line(["E-dup", rows[0][1], rows[0][2], rows[0][3]]),  # 7: repeats line 2's resident ID
        csv_line([rows[5][0], "", rows[5][2], rows[5][3]]),  # 8: no name
        csv_line(rows[7]),  # 9: already a member
        csv_line([rows[6][0], "李四", rows[6][2], rows[6][3]]),  # 10: not the wallet holder's name
    ]
    page = logged_in(employer.operator_user)
    response = import_file(page, grassroots, members_csv(lines))
    assert response.status_code == 400
    html = response.content.decode()
    found = set(re.findall(r'<tr data-line="(\d+)" data-code="([a-z_]+)"><td class="num">\d+</td><td>([^<]+)</td>', html))
    assert found == {
        ("3", "id_checksum", "身份证号"), ("4", "wallet_unknown", "钱包编号"), ("5", "amount_format", "会费基数"),
        ("6", "authorisation_format", "代扣授权"), ("7", "duplicate_resident_id", "身份证号"),
        ("8", "required", "姓名"), ("9", "already_member", "身份证号"), ("10", "holder_mismatch", "姓名"),
    }
    assert "与第2行身份证号 (resident ID)重复" in html
    assert UnionMember.objects.count() == 1 and member_events(grassroots) == []

    # The fixed file (GBK, as Excel saves it in China) is imported whole.
    fixed = [csv_line(rows[i], dues="5000", authorised="否" if i == 2 else "是") for i in range(7)]
    response = import_file(page, grassroots, members_csv(fixed, encoding="gb18030"))
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert any("已导入 7 名会员" in m for m in messages_of(page.get(response.url)))
    imported = UnionMember.objects.exclude(employee_no="OLD").order_by("employee_no")
    assert [m.resident_id for m in imported] == [row[2] for row in rows[:7]]
    assert all(m.active and m.dues_base_fen == 500_000 for m in imported)
    assert [m.standing_authorisation for m in imported] == [True, True, False, True, True, True, True]
    events = member_events(grassroots)
    assert len(events) == 7 and {e.subject_id for e in events} == {str(m.pk) for m in imported}
    assert all(rows[i][2] not in str(e.data) for i, e in enumerate(events))


def test_import_refuses_a_nul_character_by_its_line_and_writes_nothing(employer, grassroots):
    """A NUL in an employee number passed every check (the operator checks names and wallets only), and no
    PostgreSQL text column can store it: the import failed with a server error."""
    rows = staff(employer, 2)
    lines = [csv_line(rows[0]), csv_line(["E\x0001", *rows[1][1:4]])]
    response = import_file(logged_in(employer.operator_user), grassroots, members_csv(lines))
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-line="3" data-code="not_text"' in html and "NUL" in html
    assert not UnionMember.objects.exists() and member_events(grassroots) == []


def test_import_refuses_a_dues_base_too_large_to_store_or_a_control_character_by_its_line(employer, grassroots):
    """A dues base of 23 digits passed the amount check and overflowed the database column (a server error); a
    control character in a name was refused by the operator as another holder's name."""
    rows = staff(employer, 3)
    lines = [csv_line(rows[0], dues="99999999999999999999999"), csv_line([rows[1][0], "张\x01三", *rows[1][2:4]]),
             csv_line(["E\x1b3", *rows[2][1:4]])]
    response = import_file(logged_in(employer.operator_user), grassroots, members_csv(lines))
    assert response.status_code == 400
    html = response.content.decode()
    found = set(re.findall(r'<tr data-line="(\d+)" data-code="([a-z_]+)"><td class="num">\d+</td><td>([^<]+)</td>', html))
    assert found == {("2", "amount_too_large", "会费基数"), ("3", "control_character", "姓名"),
                     ("4", "control_character", "工号")}
    assert not UnionMember.objects.exists() and member_events(grassroots) == []


def test_a_dues_base_of_more_digits_than_decimal_holds_is_a_problem_of_its_line():
    data = members_csv([["E1", "张三", "11010519491231002X", "1001234567890123", "9" * 40, "是"]])
    _, problems = members.read_members_csv(data)
    assert [(p.line, p.field, p.code) for p in problems] == [(2, "dues_base", "amount_format")]


def test_a_malformed_member_file_names_the_line_where_it_broke():
    """A quote never closed reads on to the end of the file as one cell, past the csv module's field limit: the
    file was refused as malformed without saying where."""
    lines = [["E1", "张三", "11010519491231002X", "1001234567890123", "8000.00", "是"]] * 3
    data = members_csv(lines) + b'E4,"unclosed,11010519491231002X\r\n' + b"x" * 140_000
    with pytest.raises(members.MembersRefused) as refused:
        members.read_members_csv(data)
    (problem,) = refused.value.problems
    assert (problem.code, problem.line) == ("malformed_csv", 5) and "line 5" in problem.message


def test_a_utf16_member_file_is_an_encoding_problem_not_a_nul_character():
    data = members_csv([["E1", "张三", "11010519491231002X", "1001234567890123", "8000.00", "是"]], encoding="utf-8")
    with pytest.raises(members.MembersRefused) as refused:
        members.read_members_csv(data.decode("utf-8-sig").encode("utf-16"))
    assert [(p.line, p.code) for p in refused.value.problems] == [(0, "encoding")]
    assert "UTF-16" in refused.value.problems[0].message


def test_import_refuses_a_file_without_the_columns(employer, grassroots):
    page = logged_in(employer.operator_user)
    data = builders.to_csv([["工号", "姓名", "身份证号"], ["E1", "张三", builders.resident_id(1)]])
    response = import_file(page, grassroots, data)
    assert response.status_code == 400
    html = response.content.decode()
    for column in ("钱包编号", "会费基数", "代扣授权"):
        assert f"缺少“{column}”列" in html
    assert not UnionMember.objects.exists()
    template = page.get(reverse("payroll:union-members-template", args=[grassroots.pk]))
    assert template.content.decode("utf-8-sig").splitlines()[0] == "工号,姓名,身份证号,钱包编号,会费基数,代扣授权"


# ---------------------------------------------------------------------------------------------
# Who may do what
# ---------------------------------------------------------------------------------------------


def member_urls(union, member):
    return {
        "list": reverse("payroll:union-members", args=[union.pk]),
        "add": reverse("payroll:union-member-add", args=[union.pk]),
        "import": reverse("payroll:union-members-import", args=[union.pk]),
        "edit": reverse("payroll:union-member-edit", args=[union.pk, member.pk]),
        "active": reverse("payroll:union-member-active", args=[union.pk, member.pk]),
    }


@pytest.fixture
def member(employer, grassroots):
    row = staff(employer, 1)[0]
    return UnionMember.objects.create(union=grassroots, employee_no=row[0], name=row[1], resident_id=row[2],
                                      wallet_id=row[3], dues_base_fen=800_000)


def test_another_employer_can_neither_see_nor_edit(employer, grassroots, member):
    other = Organization.objects.create(name="乙公司", org_type=Organization.Type.EMPLOYER, uscc=f.make_uscc())
    other_union_org = Organization.objects.create(name="乙公司工会", org_type=Organization.Type.UNION, uscc=f.make_uscc())
    other_union = UnionSettings.objects.create(union=other_union_org, employer=other, wallet=grassroots.wallet,
                                               higher_union_wallet=grassroots.higher_union_wallet)
    outsider = logged_in(f.make_user(role=roles.EMPLOYER_OPERATOR, organization=other))
    urls = member_urls(grassroots, member)
    for name in ("list", "add", "import", "edit"):
        assert outsider.get(urls[name]).status_code == 404, name
    assert outsider.post(urls["add"], member_form(["E2", "张三", builders.resident_id(2), builders.wallet_id(2)])
                         ).status_code == 404
    assert outsider.post(urls["edit"], member_form([member.employee_no, "王五", "", member.wallet_id])).status_code == 404
    assert outsider.post(urls["active"], {"active": "0"}).status_code == 404
    # Through their own union's pages, another union's member does not exist either.
    own = member_urls(other_union, member)
    assert outsider.get(own["list"]).status_code == 200
    assert outsider.get(own["edit"]).status_code == 404
    assert outsider.post(own["active"], {"active": "0"}).status_code == 404
    member.refresh_from_db()
    assert member.active and member.name == "张三"
    assert UnionMember.objects.count() == 1


@pytest.mark.parametrize("role", [roles.AUDITOR, roles.EMPLOYER_APPROVER])
def test_approvers_and_auditors_read_and_change_nothing(employer, grassroots, member, role):
    organization = None if role == roles.AUDITOR else employer.org
    page = logged_in(f.make_user(role=role, organization=organization))
    urls = member_urls(grassroots, member)
    html = page.get(urls["list"]).content.decode()
    assert f'data-member="{member.pk}"' in html and member.resident_id not in html
    assert urls["add"] not in html and 'data-action="deactivate"' not in html
    for name in ("add", "import", "edit"):
        assert page.get(urls[name]).status_code == 403, name
    assert page.post(urls["add"], member_form(["E2", "张三", builders.resident_id(2), builders.wallet_id(2)])
                     ).status_code == 403
    assert page.post(urls["edit"], member_form([member.employee_no, "王五", "", member.wallet_id])).status_code == 403
    assert page.post(urls["active"], {"active": "0"}).status_code == 403
    assert import_file(page, grassroots, members_csv([])).status_code == 403
    member.refresh_from_db()
    assert member.active and member.name == "张三" and UnionMember.objects.count() == 1
    assert member_events(grassroots) == []


def test_the_unions_own_operator_edits_and_every_form_needs_csrf(employer, grassroots, member):
    union_operator = f.make_user(role=roles.EMPLOYER_OPERATOR, organization=grassroots.union)
    assert members.may_edit_members(user=union_operator, union=grassroots)
    urls = member_urls(grassroots, member)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(union_operator)
    assert strict.post(urls["active"], {"active": "0"}).status_code == 403  # no token
    page = strict.get(urls["list"]).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert strict.post(urls["active"], {"active": "0", "csrfmiddlewaretoken": token}).status_code == 302
    assert UnionMember.objects.get().active is False
    for name in ("add", "import", "edit"):
        assert 'name="csrfmiddlewaretoken"' in strict.get(urls[name]).content.decode(), name


# ---------------------------------------------------------------------------------------------
# The same through the API
# ---------------------------------------------------------------------------------------------


def test_members_through_the_api_for_the_unions_operators_only(employer, grassroots):
    from tests.payroll.test_pages_api import api_as

    rows = staff(employer, 3)
    api = api_as(employer.operator_user)
    url = f"/api/v1/payroll/unions/{grassroots.pk}/members/"
    body = {"employee_no": rows[0][0], "name": rows[0][1], "resident_id": rows[0][2], "wallet_id": rows[0][3],
            "dues_base_fen": 800_000, "standing_authorisation": True}

    refused = api.post(url, {**body, "wallet_id": UNKNOWN_WALLET}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "member_invalid"
    assert [(p["field"], p["code"]) for p in refused.json()["problems"]] == [("wallet_id", "wallet_unknown")]
    added = api.post(url, body, format="json")
    assert added.status_code == 201 and added.json()["resident_id"] != rows[0][2]  # masked
    member = UnionMember.objects.get()
    assert (member.resident_id, member.dues_base_fen, member.standing_authorisation) == (rows[0][2], 800_000, True)

    changed = api.put(f"{url}{member.pk}/", {**body, "employee_no": "E-100", "dues_base_fen": 900_050}, format="json")
    assert changed.status_code == 200 and changed.json()["employee_no"] == "E-100"
    assert api.post(f"{url}{member.pk}/deactivate/").json()["active"] is False
    assert api.post(f"{url}{member.pk}/reactivate/").json()["active"] is True
    assert api.put(f"{url}999999/", body, format="json").status_code == 404

    imported = api.post(f"{url}import/", {"file": SimpleUploadedFile(
        "会员.csv", members_csv([csv_line(rows[1]), csv_line(rows[2])]), content_type="text/csv")}, format="multipart")
    assert imported.status_code == 201 and len(imported.json()) == 2
    assert UnionMember.objects.count() == 3
    assert [e.kind.rsplit(".", 1)[1] for e in member_events(grassroots)] == [
        "added", "changed", "deactivated", "reactivated", "added", "added"]

    # The employer's approvers read members but do not change them; another employer's users see no union.
    approver = api_as(employer.approver)
    assert approver.post(url, body, format="json").json()["code"] == "role_required"
    outsider = api_as(f.make_user(role=roles.EMPLOYER_OPERATOR, organization=f.make_organization(name="丁")))
    assert outsider.post(url, body, format="json").status_code == 404


def test_an_unreachable_operator_is_a_try_again_on_the_member_pages_and_nothing_is_written(employer, grassroots,
                                                                                          member, monkeypatch):
    from adapters.ecny.interface import OperatorUnavailable
    from treasury.services import wallets

    class Unreachable:
        def __getattr__(self, name):
            def call(*args, **kwargs):
                raise OperatorUnavailable("connection refused")
            return call

    rows = staff(employer, 3, start=40)
    monkeypatch.setattr(wallets, "_operator", lambda: Unreachable())
    page = logged_in(employer.operator_user)
    before = list(UnionMember.objects.values_list("pk", "name", "wallet_id").order_by("pk"))

    response = page.post(reverse("payroll:union-member-add", args=[grassroots.pk]), member_form(rows[0]))
    assert response.status_code == 400 and "请稍后再试" in " ".join(response.context["form"].non_field_errors())
    response = page.post(reverse("payroll:union-member-edit", args=[grassroots.pk, member.pk]),
                         member_form(rows[1], resident_id=None, name=member.name))
    assert response.status_code == 400 and "请稍后再试" in " ".join(response.context["form"].non_field_errors())
    response = import_file(page, grassroots, members_csv([csv_line(rows[2])]))
    assert response.status_code == 400 and "请稍后再试" in " ".join(response.context["form"].errors["file"])

    assert list(UnionMember.objects.values_list("pk", "name", "wallet_id").order_by("pk")) == before
