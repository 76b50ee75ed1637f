"""Payroll pages and API as employer users meet them: upload -> report -> approve -> fund -> pay,
scoping (employer A never sees or acts on employer B's batch), maker-checker, auditors read-only, CSRF.
Against the sandbox operator over real HTTP; Celery runs eagerly, so paying finishes in the request."""
import re
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from payroll import services
from payroll.models import BatchState, PayrollBatch
from payroll.templates_files import EXAMPLE_USCC
from tests import factories as f
from tests.payroll import builders
from treasury.access import roles
from treasury.models import Organization, Transfer, TransferState, Wallet
from treasury.services.wallets import register_wallet

pytestmark = pytest.mark.django_db(transaction=True)
OPERATOR_CODE = "100"  # the builders' wallet ids start with it


@dataclass
class Employer:
    org: Organization
    operator_user: object
    approver: object
    sandbox: object


@pytest.fixture
def employer(ecny_sandbox):
    operator = f.make_operator(code=OPERATOR_CODE)
    org = Organization.objects.create(name="示范科技", org_type=Organization.Type.EMPLOYER, uscc=EXAMPLE_USCC)
    wallet = register_wallet(wallet_id="1009999999999999", wallet_type=Wallet.Type.CORPORATE, operator=operator,
                             holder_org=org, holder_name=org.name)
    ecny_sandbox.admin.open_wallet(wallet_id=wallet.wallet_id, wallet_type="WT09", holder_name=org.name,
                                   balance_fen=10_000_000_00)
    return Employer(org=org, sandbox=ecny_sandbox,
                    operator_user=f.make_user(role=roles.EMPLOYER_OPERATOR, organization=org),
                    approver=f.make_user(role=roles.EMPLOYER_APPROVER, organization=org))


def staff(employer, count, *, start=1):
    rows = [builders.employee_row(i) for i in range(start, start + count)]
    employer.sandbox.admin.open_wallets(wallets=[
        {"wallet_id": row[3], "wallet_type": "WT01", "wallet_class": 2, "holder_name": row[1]} for row in rows
    ])
    return rows


def csv_file(rows) -> bytes:
    return builders.to_csv(builders.payroll_rows(rows))


def import_batch(employer, rows) -> PayrollBatch:
    return services.import_payroll_file(employer=employer.org, user=employer.operator_user, filename="工资.csv",
                                        data=csv_file(rows), now=timezone.now())


def logged_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def post_upload(client, data: bytes, name="工资.csv", **extra):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(reverse("payroll:upload"), {"file": SimpleUploadedFile(name, data), **extra}, follow=True)


def action(client, batch_id, name, **data):
    return client.post(reverse("payroll:batch-action", args=[batch_id, name]), data, follow=True)


# ---------------------------------------------------------------------------------------------
# The whole flow, by pages
# ---------------------------------------------------------------------------------------------


def test_upload_report_fix_approve_fund_pay_through_pages(employer):
    rows = staff(employer, 4)
    operator = logged_in(employer.operator_user)
    page = operator.get(reverse("payroll:upload"))
    assert page.status_code == 200
    html = page.content.decode()
    assert reverse("payroll:template", args=["csv"]) in html and reverse("payroll:template", args=["xlsx"]) in html
    assert 'name="hold_invalid_lines"' in html
    template = operator.get(reverse("payroll:template", args=["xlsx"]))
    assert template.status_code == 200 and template.content[:2] == b"PK"

    # A file with a wrong holder name on its second line: rejected, every problem reported.
    broken = [list(r) for r in rows]
    broken[1][1] = "李四"
    response = post_upload(operator, csv_file(broken))
    batch = PayrollBatch.objects.get()
    assert response.redirect_chain[-1][0] == reverse("payroll:batch-detail", args=[batch.pk])
    assert batch.state == BatchState.REJECTED
    html = response.content.decode()
    assert "姓名与钱包户名不一致" in html and 'data-code="holder_mismatch"' in html
    assert any("问题" in m or "problem" in m for m in messages_of(response))
    report = operator.get(reverse("payroll:error-report", args=[batch.pk, "csv"]))
    assert report.status_code == 200 and "姓名与钱包户名不一致" in report.content.decode("utf-8-sig")
    assert operator.get(reverse("payroll:error-report", args=[batch.pk, "xlsx"])).content[:2] == b"PK"

    # The fixed file.
    response = post_upload(operator, csv_file(rows))
    batch = PayrollBatch.objects.exclude(state=BatchState.REJECTED).get()
    assert batch.state == BatchState.VALIDATED and batch.payable_count == 4
    html = response.content.decode()
    assert 'data-action="submit"' in html and 'data-action="approve"' not in html
    assert builders.employee_row(1)[2] not in html  # resident IDs are masked in the list
    action(operator, batch.pk, "submit")

    approver = logged_in(employer.approver)
    queue = approver.get(reverse("payroll:approval-queue"))
    assert f'data-batch="{batch.pk}"' in queue.content.decode()
    response = action(approver, batch.pk, "approve")
    assert 'data-action="fund"' in response.content.decode()
    action(approver, batch.pk, "fund")
    response = action(operator, batch.pk, "pay")

    batch.refresh_from_db()
    assert batch.state == BatchState.PAID
    html = response.content.decode()
    assert 'data-testid="progress"' in html and 'data-testid="paid-count">4<' in html
    assert set(Transfer.objects.filter(batch_ref=batch.batch_ref).values_list("state", flat=True)) == {
        TransferState.SETTLED}
    progress = operator.get(reverse("payroll:batch-progress", args=[batch.pk])).json()
    assert progress["state"] == "paid" and progress["paid_count"] == 4 and progress["open_count"] == 0

    history = operator.get(reverse("payroll:batch-list"), {"state": "paid", "period": "2025-06"})
    assert f'data-batch="{batch.pk}"' in history.content.decode()
    assert 'data-batch="' not in operator.get(reverse("payroll:batch-list"), {"state": "cancelled"}).content.decode()


def test_refusals_are_messages_not_errors(employer):
    batch = import_batch(employer, staff(employer, 2))
    operator = logged_in(employer.operator_user)
    response = action(operator, batch.pk, "pay")  # not funded yet
    assert response.status_code == 200
    assert any("状态" in m or "state" in m for m in messages_of(response))
    response = action(operator, batch.pk, "cancel", reason="  ")
    assert any("原因" in m or "reason" in m for m in messages_of(response))
    response = action(operator, batch.pk, "cancel", reason="工资表有误")
    batch.refresh_from_db()
    assert batch.state == BatchState.CANCELLED and "工资表有误" in response.content.decode()
    # A file that is not a spreadsheet: refused on the upload page with a clear message.
    response = post_upload(operator, b"\x00\x01binary", name="salary.pdf")
    assert response.status_code == 400 and response.context["form"].errors["file"]


def test_maker_checker_refusal_is_shown_clearly(employer):
    batch = import_batch(employer, staff(employer, 2))
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    employer.operator_user.groups.add(*employer.approver.groups.all())  # holds both roles, prepared the batch
    del employer.operator_user._role_names  # the roles were read (and cached) on the object during the import
    operator = logged_in(employer.operator_user)
    page = operator.get(reverse("payroll:batch-detail", args=[batch.pk])).content.decode()
    assert 'data-action="approve"' not in page and 'data-testid="maker-checker-note"' in page
    response = action(operator, batch.pk, "approve")
    assert any("经办人不能审批自己准备的业务" in m for m in messages_of(response))
    api = api_as(employer.operator_user).post(f"/api/v1/payroll/batches/{batch.pk}/approve/")
    assert api.status_code == 403 and api.json()["code"] == "maker_checker"
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.SUBMITTED


# ---------------------------------------------------------------------------------------------
# The whole flow, by the API
# ---------------------------------------------------------------------------------------------


def test_upload_approve_pay_through_the_api(employer):
    rows = staff(employer, 3)
    operator, approver = api_as(employer.operator_user), api_as(employer.approver)
    broken = [list(r) for r in rows]
    broken[2][1] = "王五"
    response = operator.post("/api/v1/payroll/batches/upload/",
                             {"file": _named(csv_file(broken), "a.csv")}, format="multipart")
    assert response.status_code == 201, response.content
    rejected = response.json()
    assert rejected["state"] == "rejected" and rejected["problems"][0]["code"] == "holder_mismatch"
    report = operator.get(f"/api/v1/payroll/batches/{rejected['id']}/error-report/", {"fmt": "csv"})
    assert report.status_code == 200 and "姓名与钱包户名不一致" in report.content.decode("utf-8-sig")

    response = operator.post("/api/v1/payroll/batches/upload/", {"file": _named(csv_file(rows), "b.csv")},
                             format="multipart")
    assert response.status_code == 201
    batch = response.json()
    assert batch["state"] == "validated" and batch["available_actions"] == ["submit", "cancel"]
    again = operator.post("/api/v1/payroll/batches/upload/", {"file": _named(csv_file(rows), "b.csv")},
                          format="multipart")
    assert again.status_code == 409 and again.json()["code"] == "duplicate_file"

    url = f"/api/v1/payroll/batches/{batch['id']}"
    assert operator.post(f"{url}/approve/").json()["code"] in ("role_required", "not_an_approver")
    assert operator.post(f"{url}/submit/").json()["state"] == "submitted"
    assert approver.post(f"{url}/approve/").json()["state"] == "approved"
    assert approver.post(f"{url}/submit/").status_code in (403, 409)
    assert approver.post(f"{url}/fund/").json()["state"] == "funded"
    paid = operator.post(f"{url}/pay/")
    assert paid.status_code == 200 and paid.json()["state"] == "paid"

    progress = operator.get(f"{url}/progress/").json()
    assert progress == {**progress, "state": "paid", "count": 3, "paid_count": 3, "open_count": 0, "done": True}
    assert progress["paid_fen"] == sum(builders.net_fen(r) for r in rows)
    lines = operator.get(f"{url}/lines/").json()
    assert lines["count"] == 3
    first = lines["results"][0]
    assert first["state"] == "settled" and "*" in first["resident_id"] and "*" in first["wallet_id"]
    assert first["resident_id"] != rows[0][2]
    listed = operator.get("/api/v1/payroll/batches/", {"state": "paid"}).json()
    assert [b["id"] for b in listed["results"]] == [batch["id"]]
    assert operator.get("/api/v1/payroll/batches/", {"state": "nonsense"}).status_code == 400
    assert operator.post(f"{url}/cancel/", {"reason": "too late"}).status_code == 409


def _named(data: bytes, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


# ---------------------------------------------------------------------------------------------
# Scoping, auditors, CSRF
# ---------------------------------------------------------------------------------------------


def test_employer_b_can_never_see_or_act_on_employer_a_batch(employer):
    batch = import_batch(employer, staff(employer, 2))
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    other = f.make_organization(name="另一家单位")
    for role in (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER):
        outsider = f.make_user(role=role, organization=other)
        page = logged_in(outsider)
        for name in ("payroll:batch-detail", "payroll:batch-progress"):
            assert page.get(reverse(name, args=[batch.pk])).status_code == 404
        assert page.get(reverse("payroll:error-report", args=[batch.pk, "csv"])).status_code == 404
        for name in ("submit", "approve", "fund", "pay", "cancel"):
            response = page.post(reverse("payroll:batch-action", args=[batch.pk, name]), {"reason": "x"})
            assert response.status_code == 404, name
        listed = page.get(reverse("payroll:batch-list")).content.decode()
        assert f'data-batch="{batch.pk}"' not in listed
        if role == roles.EMPLOYER_APPROVER:
            assert f'data-batch="{batch.pk}"' not in page.get(reverse("payroll:approval-queue")).content.decode()

        api = api_as(outsider)
        url = f"/api/v1/payroll/batches/{batch.pk}"
        for suffix in ("/", "/lines/", "/progress/", "/error-report/"):
            response = api.get(url + suffix)
            assert response.status_code == 404 and response.json()["code"] == "not_found", suffix
        for name in ("submit", "approve", "fund", "pay", "cancel"):
            assert api.post(f"{url}/{name}/", {"reason": "x"}).status_code == 404, name
        assert api.get("/api/v1/payroll/batches/").json()["count"] == 0
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.SUBMITTED


def test_auditor_reads_everything_and_changes_nothing(employer):
    batch = import_batch(employer, staff(employer, 2))
    auditor = f.make_user(role=roles.AUDITOR)
    page = logged_in(auditor)
    detail = page.get(reverse("payroll:batch-detail", args=[batch.pk]))
    assert detail.status_code == 200 and "data-action=" not in detail.content.decode()
    assert f'data-batch="{batch.pk}"' in page.get(reverse("payroll:batch-list")).content.decode()
    assert page.post(reverse("payroll:batch-action", args=[batch.pk, "submit"])).status_code == 403
    assert page.get(reverse("payroll:upload")).status_code == 403
    api = api_as(auditor)
    assert api.get(f"/api/v1/payroll/batches/{batch.pk}/").json()["available_actions"] == []
    response = api.post(f"/api/v1/payroll/batches/{batch.pk}/submit/")
    assert response.status_code == 403 and response.json()["code"] == "read_only_role"
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.VALIDATED


def test_post_forms_need_the_csrf_token(employer):
    batch = import_batch(employer, staff(employer, 2))
    client = logged_in(employer.operator_user, enforce_csrf_checks=True)
    url = reverse("payroll:batch-action", args=[batch.pk, "submit"])
    assert client.post(url).status_code == 403
    assert client.post(reverse("payroll:upload"), {}).status_code == 403
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.VALIDATED
    page = client.get(reverse("payroll:batch-detail", args=[batch.pk])).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post(url, {"csrfmiddlewaretoken": token}).status_code == 302
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.SUBMITTED


def test_pages_need_login_and_an_employer_role(employer):
    assert Client().get(reverse("payroll:batch-list")).status_code == 302
    clerk = logged_in(f.make_user(role=roles.FINANCE_CLERK))
    assert clerk.get(reverse("payroll:batch-list")).status_code == 403
    assert clerk.get(reverse("payroll:upload")).status_code == 403


def test_payslips_open_for_the_employer_and_nobody_else(employer):
    rows = staff(employer, 2)
    batch = import_batch(employer, rows)
    now = timezone.now()
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    services.approve_batch(batch_id=batch.pk, user=employer.approver, now=now)
    services.fund_batch(batch_id=batch.pk, user=employer.approver, now=now)
    operator = logged_in(employer.operator_user)
    response = action(operator, batch.pk, "pay")
    line_no = batch.lines.order_by("line_no").first().line_no
    url = reverse("payroll:payslip", args=[batch.pk, line_no])
    assert url in response.content.decode()
    pdf = operator.get(url)
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    archive = operator.get(reverse("payroll:payslips-zip", args=[batch.pk]))
    assert archive.status_code == 200 and archive.content[:2] == b"PK"
    outsider = logged_in(f.make_user(role=roles.EMPLOYER_OPERATOR, organization=f.make_organization(name="乙")))
    assert outsider.get(url).status_code == 404
    assert outsider.get(reverse("payroll:payslips-zip", args=[batch.pk])).status_code == 404
    assert operator.get(reverse("payroll:payslip", args=[batch.pk, 999])).status_code == 404
