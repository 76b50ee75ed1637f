"""Declaration pages and API as employers and tax staff meet them: scoping (another employer's declaration is
a 404 by page and API; tax staff see their authority's, masked), import errors listed with line and column and
nothing stored, the template, the payroll link with differences shown, actions by page and API."""
from __future__ import annotations

import io
import re

import pytest

from django.urls import reverse
from django.utils import timezone

from payroll.models import PayrollBatch, PayrollLine
from social_security import parsing, services
from social_security.models import Declaration, DeclarationState as S
from tests.clients import api_as, logged_in
from tests import factories as f
from tests.clients import assert_links_lead_to
from tests.social_security.test_declarations import ROWS
from treasury.access import roles
from treasury.models import Organization, Wallet

API = "/api/v1/social/declarations/"


def csv_file(lines, *, period="2026-03", uscc=None) -> io.BytesIO:
    header = [f"费款所属期,{period}"] + ([f"单位统一社会信用代码,{uscc}"] if uscc else []) + ["", "姓名,身份证号,缴费基数"]
    data = io.BytesIO("\n".join(header + lines).encode("utf-8"))
    data.name = "declaration.csv"
    return data


def test_scoping_by_page_and_api(world, fake_tips):
    mine = services.create_declaration(user=world.operator_user, region_code="370100", period="2026-03", rows=ROWS,
                                       now=timezone.now())
    theirs = services.create_declaration(user=world.other_operator, region_code="370100", period="2026-03",
                                         rows=ROWS[:1], now=timezone.now())
    own = logged_in(world.operator_user)
    page = own.get(reverse("social:declaration-list")).content.decode()
    assert mine.declaration_no in page and theirs.declaration_no not in page
    assert own.get(reverse("social:declaration-detail", args=[theirs.pk])).status_code == 404
    assert api_as(world.operator_user).get(f"{API}{theirs.pk}/").status_code == 404
    assert [d["id"] for d in api_as(world.operator_user).get(API).json()["results"]] == [mine.pk]
    assert api_as(world.other_approver).post(f"{API}{mine.pk}/declare/").status_code == 404
    # Tax staff of the collecting authority read both, with names and IDs masked; another authority sees none.
    staff = logged_in(world.tax_staff)
    detail = staff.get(reverse("social:declaration-detail", args=[mine.pk])).content.decode()
    assert "110101199003071233" not in detail and "张三" not in detail and "低于下限" in detail
    assert {d["id"] for d in api_as(world.tax_staff).get(API).json()["results"]} == {mine.pk, theirs.pk}
    assert api_as(world.tax_staff).post(f"{API}{mine.pk}/declare/").status_code == 403
    assert api_as(world.other_tax_staff).get(API).json()["results"] == []
    assert api_as(world.other_tax_staff).get(f"{API}{mine.pk}/").status_code == 404
    lines = api_as(world.operator_user).get(f"{API}{mine.pk}/lines/").json()["results"]
    assert lines[0]["resident_id"] == "110101199003071233" and lines[1]["base_note"].startswith("低于下限")
    assert api_as(world.tax_staff).get(f"{API}{mine.pk}/lines/").json()["results"][0]["resident_id"] != lines[0]["resident_id"]
    # someone with no employer or tax role gets nothing
    clerk = f.make_user(role=roles.FINANCE_CLERK, organization=world.employer)
    assert api_as(clerk).get(API).status_code == 403


def test_import_errors_are_listed_and_nothing_is_stored(world):
    bad = csv_file(["张三,110101199003071233,8000.00", "李四,110101199003071234,abc", ",310104198511124567,5000"])
    response = logged_in(world.operator_user).post(reverse("social:declaration-new"), {
        "region": "370100", "period": "2026-03", "source": "imported", "file": bad})
    assert response.status_code == 400  # refused: nothing created
    page = response.content.decode()
    assert "校验位" in page and "金额格式" in page and "必填" in page
    assert not Declaration.objects.exists()
    bad.seek(0)
    api = api_as(world.operator_user).post(f"{API}import/", {"region": "370100", "period": "2026-03", "file": bad},
                                           format="multipart")
    assert api.status_code == 400 and api.json()["code"] == "lines_refused"
    assert {(p["line"], p["column"]) for p in api.json()["problems"]} == {(5, "身份证号"), (5, "缴费基数"), (6, "姓名")}
    wrong_period = csv_file(["张三,110101199003071233,8000.00"], period="2026-04")
    api = api_as(world.operator_user).post(f"{API}import/", {"region": "370100", "period": "2026-03",
                                                             "file": wrong_period}, format="multipart")
    assert api.status_code == 400 and api.json()["problems"][0]["code"] == "period_mismatch"
    assert not Declaration.objects.exists()


def test_a_refused_new_declaration_says_its_chosen_file_was_not_kept(world):
    good = csv_file(["张三,110101199003071233,8000.00"], uscc=world.employer.uscc)
    good.name = "三月申报.csv"
    response = logged_in(world.operator_user).post(reverse("social:declaration-new"), {
        "region": "370100", "period": "2026-13", "source": "imported", "file": good})
    assert response.status_code == 400 and "period" in response.context["form"].errors
    note = re.search(r'data-testid="file-not-kept">([^<]*)<', response.content.decode())
    assert note and "三月申报.csv" in note.group(1) and "重新选择" in note.group(1)
    assert not Declaration.objects.exists()


def test_import_then_declare_and_pay_by_page(world, fake_tips):
    good = csv_file(["张三,110101199003071233,8000.00", "李四,310104198511124567,3500.00"], uscc=world.employer.uscc)
    response = logged_in(world.operator_user).post(reverse("social:declaration-new"), {
        "region": "370100", "period": "2026-03", "source": "imported", "file": good})
    declaration = Declaration.objects.get()
    assert response.status_code == 302 and declaration.line_count == 2 and declaration.source == "imported"
    approver = logged_in(world.approver)
    detail = approver.get(reverse("social:declaration-detail", args=[declaration.pk])).content.decode()
    assert 'data-action="declare"' in detail and "低于下限，按下限 ¥4,680.00 计" in detail
    approver.post(reverse("social:declaration-action", args=[declaration.pk, "declare"]))
    declaration.refresh_from_db()
    assert declaration.state == S.CONFIRMED
    approver.post(reverse("social:declaration-action", args=[declaration.pk, "pay"]))
    services.finish_paying_declarations(now=timezone.now())
    declaration.refresh_from_db()
    assert declaration.state == S.PAID
    detail = approver.get(reverse("social:declaration-detail", args=[declaration.pk])).content.decode()
    assert declaration.voucher_no in detail and 'data-testid="receipt-link"' in detail
    number = services_receipt(declaration)
    assert approver.get(reverse("receipts:download", args=[number])).status_code == 200
    # Whoever reads the declaration gets a link to its transfer and receipt exactly when they may open them
    # (tax staff read every declaration of their authority; whose transfers they see depends on the wallets).
    for user in (world.approver, world.tax_staff):
        client = logged_in(user)
        detail = client.get(reverse("social:declaration-detail", args=[declaration.pk])).content.decode()
        assert f"#{declaration.transfer_id}" in detail
        opens = client.get(reverse("transfer-detail", args=[declaration.transfer_id])).status_code == 200
        assert ('data-testid="transfer-link"' in detail) == opens, user
        downloads = client.get(reverse("receipts:download", args=[number])).status_code == 200
        assert ('data-testid="receipt-link"' in detail) == downloads, user
    # Where the fund's wallet is the social-insurance agency's (as in the demo), the transfer is not the tax
    # authority's to open: the page names it without a link.
    agency = f.make_organization(org_type=Organization.Type.SOCIAL_INSURANCE_AGENCY, name="社会保险事业中心")
    Wallet.objects.filter(pk=world.fund_wallet.pk).update(holder_org=agency)
    staff = logged_in(world.tax_staff)
    detail = staff.get(reverse("social:declaration-detail", args=[declaration.pk])).content.decode()
    assert staff.get(reverse("transfer-detail", args=[declaration.transfer_id])).status_code == 404
    assert f"#{declaration.transfer_id}" in detail and 'data-testid="transfer-link"' not in detail


def services_receipt(declaration) -> str:
    from social_security.selectors import receipt_number

    return receipt_number(declaration=declaration)


def test_preparer_sees_no_declare_button_and_the_template_reads_back(world):
    declaration = services.create_declaration(user=world.operator_user, region_code="370100", period="2026-03",
                                              rows=ROWS, now=timezone.now())
    page = logged_in(world.operator_user).get(reverse("social:declaration-detail", args=[declaration.pk]))
    assert 'data-action="declare"' not in page.content.decode() and 'data-action="add-line"' in page.content.decode()
    for file_format in ("csv", "xlsx"):
        response = logged_in(world.operator_user).get(reverse("social:declaration-template", args=[file_format]))
        assert response.status_code == 200
        parsed = parsing.parse_declaration_file(response.content, filename=f"t.{file_format}")
        assert parsed.is_valid and len(parsed.lines) == 2 and parsed.period == "2026-03"


def test_api_create_declare_pay(world, fake_tips):
    created = api_as(world.operator_user).post(API, {"region": "370100", "period": "2026-03", "lines": [
        {"name": "张三", "resident_id": "110101199003071233", "base": "8000.00"},
        {"name": "李四", "resident_id": "310104198511124567", "base": "3500"}]}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["state"] == "draft" and body["total"] == "4336.56" and body["actions"] == ["edit", "cancel"]
    pk = body["id"]
    assert api_as(world.operator_user).post(f"{API}{pk}/declare/").json()["code"] == "role_required"
    declared = api_as(world.approver).post(f"{API}{pk}/declare/").json()
    assert declared["state"] == "confirmed" and declared["actions"] == ["pay"]
    paid = api_as(world.approver).post(f"{API}{pk}/pay/").json()
    assert paid["state"] in ("paying", "paid") and paid["payment_attempts"] == 1
    again = api_as(world.second_approver).post(f"{API}{pk}/pay/")
    services.finish_paying_declarations(now=timezone.now())
    assert again.status_code == 409 or api_as(world.approver).get(f"{API}{pk}/").json()["payment_attempts"] == 1
    assert api_as(world.approver).get(f"{API}{pk}/").json()["state"] == "paid"
    bad = api_as(world.operator_user).post(API, {"region": "370100", "period": "2026-04", "lines": [
        {"name": "张三", "resident_id": "110101199003071233", "base": "8000.001"}]}, format="json")
    assert bad.status_code == 400 and bad.json()["problems"][0]["column"] == "base"


def _payroll_batch(world, *, withheld: list[int]) -> PayrollBatch:
    batch = PayrollBatch.objects.create(employer=world.employer, payer_wallet=world.wallet, period="2026-03",
                                        filename="p.csv", file_format="csv", file_sha256="0" * 64, upload_path="x",
                                        prepared_by=world.operator_user, created_at=timezone.now())
    PayrollBatch.objects.filter(pk=batch.pk).update(state="validated")
    for i, (row, social) in enumerate(zip(ROWS[:2], withheld), start=1):
        PayrollLine.objects.create(batch=batch, line_no=i, employee_no=f"E{i}", name=row.name,
                                   resident_id=row.resident_id, wallet_id=f"100{i:013d}", gross_fen=row.base_fen,
                                   net_fen=row.base_fen - social, deductions={"social_insurance": social})
    return batch


def test_a_declaration_from_payroll_links_lines_and_shows_withholding_differences(world):
    # 张三 8,000.00: individual 824.00 withheld right; 李四 (base 4,680.00 after the floor): 482.04 due, 280.00 withheld
    batch = _payroll_batch(world, withheld=[82400, 28000])
    response = logged_in(world.operator_user).post(reverse("social:declaration-new"), {
        "region": "370100", "source": "payroll", "payroll_batch": str(batch.pk)})
    assert response.status_code == 302
    declaration = Declaration.objects.get()
    assert declaration.period == "2026-03" and declaration.payroll_batch == batch and declaration.source == "payroll"
    lines = {l.name: l for l in declaration.lines.all()}
    assert lines["张三"].payroll_line.line_no == 1 and lines["张三"].withheld_difference_fen == 0
    assert lines["李四"].withheld_difference_fen == 28000 - 48204
    assert [l.name for l in services.withheld_differences(declaration=declaration)] == ["李四"]
    page = logged_in(world.operator_user).get(reverse("social:declaration-detail", args=[declaration.pk])).content.decode()
    assert 'data-testid="withheld-differences"' in page and page.count('data-testid="withheld-differs"') == 1
    other = _payroll_batch_of_other(world)
    refused = api_as(world.operator_user).post(API, {"region": "370100", "payroll_batch": other.pk}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "payroll_not_found"


def _payroll_batch_of_other(world) -> PayrollBatch:
    from treasury.models import Wallet

    wallet = Wallet.objects.filter(holder_org=world.other_employer).first()
    return PayrollBatch.objects.create(employer=world.other_employer, payer_wallet=wallet, period="2026-03",
                                       filename="p.csv", file_format="csv", file_sha256="1" * 64, upload_path="x",
                                       prepared_by=world.other_operator, created_at=timezone.now())


@pytest.mark.django_db
def test_a_period_typed_wrong_gets_one_error_saying_why():
    from social_security.forms import NewDeclarationForm

    from django.utils import translation

    with translation.override("en"):
        form = NewDeclarationForm({"source": "entered", "period": "2026/13"})
        assert not form.is_valid()
        assert [str(e) for e in form.errors["period"]] == ["The period must be YYYY-MM."]
        assert [str(e) for e in NewDeclarationForm({"source": "entered"}).errors["period"]] == ["Required."]


def test_a_refused_line_comes_back_in_the_add_form_with_what_was_typed_and_the_field_at_fault(world):
    """Adding an employee the form or the service refuses shows the declaration again (400) with the name, resident
    ID and base as typed and the problem under its field, where it was a redirect that emptied the form."""
    declaration = services.create_declaration(user=world.operator_user, region_code="370100", period="2026-03",
                                              rows=ROWS, now=timezone.now())
    client = logged_in(world.operator_user)
    url = reverse("social:declaration-add-line", args=[declaration.pk])
    resident_id = f.make_resident_id()

    response = client.post(url, {"name": "钱七", "resident_id": resident_id, "base": "6千"})
    assert response.status_code == 400
    assert list(response.context["line_form"].errors) == ["base"]
    html = response.content.decode()
    assert 'value="钱七"' in html and f'value="{resident_id}"' in html and 'value="6千"' in html

    wrong_id = resident_id[:-1] + ("0" if resident_id[-1] != "0" else "1")  # the check digit no longer holds
    response = client.post(url, {"name": "钱七", "resident_id": wrong_id, "base": "6000"})
    assert response.status_code == 400  # the service's own check: under the resident ID
    assert list(response.context["line_form"].errors) == ["resident_id"]
    html = response.content.decode()
    assert 'value="钱七"' in html and f'value="{wrong_id}"' in html and 'value="6000"' in html
    assert declaration.lines.count() == len(ROWS)
    # Its pages of lines and the language switch lead to the declaration, not to the add-line address (POST only).
    assert_links_lead_to(client, response, reverse("social:declaration-detail", args=[declaration.pk]))
