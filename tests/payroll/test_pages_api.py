"""Payroll pages and API as employer users meet them: upload -> report -> approve -> fund -> pay,
scoping (employer A never sees or acts on employer B's batch), maker-checker, auditors read-only, CSRF.
Against the sandbox operator over real HTTP; Celery runs eagerly, so paying finishes in the request."""
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from payroll import services
from payroll.models import BatchState, PayrollBatch
from tests.clients import api_as, logged_in
from tests import factories as f
from tests.payroll import builders
from tests.payroll.helpers import csv_file, staff, upload
from treasury.access import roles
from treasury.models import Transfer, TransferState

pytestmark = pytest.mark.django_db(transaction=True)


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
    assert 'data-testid="upload-fixed"' in html  # the operator uploads the fixed file; the approver cannot
    approver_page = logged_in(employer.approver).get(reverse("payroll:batch-detail", args=[batch.pk]))
    assert 'data-testid="upload-fixed"' not in approver_page.content.decode()
    assert any("问题" in m or "problem" in m for m in messages_of(response))
    report = operator.get(reverse("payroll:error-report", args=[batch.pk, "csv"]))
    assert report.status_code == 200 and "姓名与钱包户名不一致" in b"".join(report.streaming_content).decode("utf-8-sig")
    assert b"".join(operator.get(reverse("payroll:error-report", args=[batch.pk, "xlsx"])).streaming_content)[:2] == b"PK"

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
    batch = upload(employer, staff(employer, 2))
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


def test_a_nul_character_far_down_a_csv_is_a_refusal_by_line_not_a_server_error(employer):
    """On PostgreSQL the line was stored as it was read, and the NUL in its employee number ended the upload with
    a server error; now the page and the API say which cell, and nothing is kept."""
    rows = [builders.employee_row(i) for i in range(700)]
    rows[650][0] = "E\x00" + rows[650][0][1:]
    data = csv_file(rows)
    response = post_upload(logged_in(employer.operator_user), data)
    assert response.status_code == 400 and "第657行A列含有空字符" in str(response.context["form"].errors["file"])
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api_as(employer.operator_user).post("/api/v1/payroll/batches/upload/",
                                                   {"file": SimpleUploadedFile("工资.csv", data)}, format="multipart")
    assert response.status_code == 400 and response.json()["code"] == "not_a_spreadsheet"
    assert "line 657, column A" in response.json()["message"]
    assert not PayrollBatch.objects.exists()


def test_an_unreachable_operator_is_a_clear_try_again_not_an_error(employer, monkeypatch):
    from adapters.ecny.interface import OperatorUnavailable
    from treasury.services import wallets

    batch = upload(employer, staff(employer, 2))
    now = timezone.now()
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    services.approve_batch(batch_id=batch.pk, user=employer.approver, now=now)

    class Unreachable:
        def __getattr__(self, name):
            def call(*args, **kwargs):
                raise OperatorUnavailable("connection refused")
            return call

    monkeypatch.setattr(wallets, "_operator", lambda: Unreachable())
    batches_before = PayrollBatch.objects.count()

    response = post_upload(logged_in(employer.operator_user), csv_file(staff(employer, 2, start=30)))
    assert response.status_code == 400
    assert "请稍后再试" in " ".join(response.context["form"].errors["file"])  # try again later
    response = action(logged_in(employer.approver), batch.pk, "fund")
    assert response.status_code == 200 and any("请稍后再试" in m for m in messages_of(response))
    response = api_as(employer.approver).post(f"/api/v1/payroll/batches/{batch.pk}/fund/")
    assert response.status_code == 503 and response.json()["code"] == "operator_unavailable"

    assert PayrollBatch.objects.count() == batches_before  # the refused upload stored nothing
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.APPROVED


def test_maker_checker_refusal_is_shown_clearly(employer):
    batch = upload(employer, staff(employer, 2))
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
    assert report.status_code == 200 and "姓名与钱包户名不一致" in b"".join(report.streaming_content).decode("utf-8-sig")

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
    batch = upload(employer, staff(employer, 2))
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
    batch = upload(employer, staff(employer, 2))
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
    batch = upload(employer, staff(employer, 2))
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
    batch = upload(employer, rows)
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
    # All payslips: prepared in the background (eagerly here), then downloaded.
    page = operator.post(reverse("payroll:payslips-request", args=[batch.pk]), follow=True)
    archive = batch.payslip_archives.get()
    download = reverse("payroll:payslips-download", args=[batch.pk, archive.pk])
    assert download in page.content.decode()
    response = operator.get(download)
    assert response.status_code == 200 and b"".join(response.streaming_content)[:2] == b"PK"
    outsider = logged_in(f.make_user(role=roles.EMPLOYER_OPERATOR, organization=f.make_organization(name="乙")))
    assert outsider.get(url).status_code == 404
    assert outsider.get(download).status_code == 404
    assert operator.get(reverse("payroll:payslip", args=[batch.pk, 999])).status_code == 404
    # The same payslip through the API, for the employer and nobody else.
    api_url = f"/api/v1/payroll/batches/{batch.pk}/lines/{line_no}/payslip/"
    pdf = api_as(employer.operator_user).get(api_url)
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert b"".join(pdf.streaming_content)[:5] == b"%PDF-"
    outsider_api = api_as(f.make_user(role=roles.EMPLOYER_OPERATOR, organization=f.make_organization(name="丙")))
    assert outsider_api.get(api_url).status_code == 404
    assert api_as(employer.operator_user).get(f"/api/v1/payroll/batches/{batch.pk}/lines/999/payslip/").status_code == 404


def test_the_template_downloads_from_the_api_in_both_formats(employer):
    api = api_as(employer.operator_user)
    csv_template = api.get("/api/v1/payroll/batches/template/?fmt=csv")
    assert csv_template.status_code == 200
    assert "工资所属期" in b"".join(csv_template.streaming_content).decode("utf-8-sig")
    xlsx_template = api.get("/api/v1/payroll/batches/template/?fmt=xlsx")
    assert xlsx_template.status_code == 200 and b"".join(xlsx_template.streaming_content)[:2] == b"PK"
    assert api.get("/api/v1/payroll/batches/template/?fmt=pdf").json()["code"] == "invalid"


# ---------------------------------------------------------------------------------------------
# Held and failed lines: retry, return, close; the batch summary receipt
# ---------------------------------------------------------------------------------------------


def partially_paid(employer):
    """Four lines: the fourth held at upload (its wallet was not open), the second fails (frozen after the
    checks). Returns the batch and its lines by row: paid, failed, paid, held."""
    rows = staff(employer, 4, skip=(3,))
    batch = upload(employer, rows, hold_invalid_lines=True)
    now = timezone.now()
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    services.approve_batch(batch_id=batch.pk, user=employer.approver, now=now)
    services.fund_batch(batch_id=batch.pk, user=employer.approver, now=now)
    employer.sandbox.admin.set_status(wallet_id=rows[1][3], status="frozen")
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    batch = services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
    assert batch.state == BatchState.PARTIALLY_PAID
    lines = [batch.lines.get(wallet_id=row[3]) for row in rows]
    return rows, batch, lines


def post_lines(client, batch_id, do, line_ids, **data):
    return client.post(reverse("payroll:batch-lines", args=[batch_id]), {"do": do, "line_ids": line_ids, **data},
                        follow=True)


def test_retry_return_close_and_summary_receipt_through_pages(employer):
    rows, batch, (paid, failed, _, held) = partially_paid(employer)
    operator = logged_in(employer.operator_user)
    html = operator.get(reverse("payroll:batch-detail", args=[batch.pk])).content.decode()
    assert 'data-testid="line-actions"' in html
    picks = set(re.findall(r'name="line_ids" value="(\d+)"', html))
    assert picks == {str(failed.pk), str(held.pk)}  # only held and failed lines can be ticked
    assert 'data-action="close"' in html and 'data-action="summary-receipt"' in html

    # Refusals are messages: closing with lines undecided, nothing ticked, no reason, a wallet still frozen.
    response = action(operator, batch.pk, "close")
    assert any("请先重试或退回" in m for m in messages_of(response)), messages_of(response)
    assert any("请先勾选" in m for m in messages_of(post_lines(operator, batch.pk, "retry", [])))
    assert any("请填写退回原因" in m for m in messages_of(post_lines(operator, batch.pk, "return", [failed.pk])))
    response = post_lines(operator, batch.pk, "retry", [failed.pk])
    assert response.status_code == 200 and any("钱包已冻结" in m for m in messages_of(response))
    response = post_lines(operator, batch.pk, "retry", [paid.pk])
    assert any("既未暂缓也未失败" in m for m in messages_of(response))

    # The held line's wallet opens: retried and paid. The frozen one is returned with a reason.
    employer.sandbox.admin.open_wallet(wallet_id=rows[3][3], wallet_type="WT01", wallet_class=2, holder_name=rows[3][1])
    response = post_lines(logged_in(employer.approver), batch.pk, "retry", [held.pk])
    assert any("已重新发放 1 笔明细" in m for m in messages_of(response)), messages_of(response)
    held.refresh_from_db()
    assert held.transfer.state == TransferState.SETTLED and not held.held
    response = post_lines(operator, batch.pk, "return", [failed.pk], reason="改用银行转账")
    assert any("已退回 1 笔明细" in m for m in messages_of(response))
    failed.refresh_from_db()
    assert failed.returned and "改用银行转账" in response.content.decode()
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.PARTIALLY_PAID

    # The summary receipt: issued when asked for, then linked; the same one when asked again.
    response = operator.post(reverse("payroll:summary-receipt", args=[batch.pk]), follow=True)
    receipt_url = re.search(r'href="(/receipts/[^"]+\.pdf)" data-testid="summary-receipt"', response.content.decode())
    assert receipt_url, response.content.decode()
    pdf = operator.get(receipt_url.group(1))
    assert pdf.status_code == 200 and b"".join(pdf.streaming_content)[:5] == b"%PDF-"
    again = operator.post(reverse("payroll:summary-receipt", args=[batch.pk]), follow=True)
    assert receipt_url.group(1) in again.content.decode()

    response = action(operator, batch.pk, "close")
    assert any("已关闭" in m for m in messages_of(response)), messages_of(response)
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.CLOSED
    html = response.content.decode()
    assert 'data-testid="line-actions"' not in html and receipt_url.group(1) in html


def test_line_actions_are_scoped_and_read_only_for_auditors(employer):
    rows, batch, (paid, failed, _, held) = partially_paid(employer)
    outsider = logged_in(f.make_user(role=roles.EMPLOYER_OPERATOR, organization=f.make_organization(name="乙")))
    assert post_lines(outsider, batch.pk, "retry", [held.pk]).status_code == 404
    assert post_lines(outsider, batch.pk, "return", [held.pk], reason="x").status_code == 404
    assert outsider.post(reverse("payroll:summary-receipt", args=[batch.pk])).status_code == 404
    assert outsider.post(reverse("payroll:batch-action", args=[batch.pk, "close"])).status_code == 404
    auditor = logged_in(f.make_user(role=roles.AUDITOR))
    html = auditor.get(reverse("payroll:batch-detail", args=[batch.pk])).content.decode()
    assert 'name="line_ids"' not in html and 'data-action="summary-receipt"' not in html
    assert auditor.post(reverse("payroll:batch-lines", args=[batch.pk]), {"do": "retry", "line_ids": [held.pk]}
                        ).status_code == 403
    api = api_as(f.make_user(role=roles.EMPLOYER_APPROVER, organization=f.make_organization(name="丙")))
    for suffix, data in (("retry", {"line_ids": [held.pk]}), ("return", {"line_ids": [held.pk], "reason": "x"}),
                         ("close", {}), ("summary-receipt", {})):
        response = api.post(f"/api/v1/payroll/batches/{batch.pk}/{suffix}/", data, format="json")
        assert response.status_code == 404 and response.json()["code"] == "not_found", suffix
    held.refresh_from_db()
    assert held.held and not held.returned and held.attempts == 0


def test_retry_return_close_and_summary_receipt_through_the_api(employer):
    rows, batch, (paid, failed, _, held) = partially_paid(employer)
    api = api_as(employer.operator_user)
    url = f"/api/v1/payroll/batches/{batch.pk}"
    assert "close" in api.get(f"{url}/").json()["available_actions"]

    response = api.post(f"{url}/close/")
    assert response.status_code == 400 and response.json()["code"] == "lines_open"
    response = api.post(f"{url}/retry/", {"line_ids": [failed.pk]}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "wallet_inactive"
    response = api.post(f"{url}/retry/", {"line_ids": [paid.pk]}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "line_not_retryable"
    response = api.post(f"{url}/retry/", {"line_ids": [999_999]}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "unknown_lines"
    assert api.post(f"{url}/retry/", {"line_ids": []}, format="json").json()["code"] == "invalid"
    response = api.post(f"{url}/return/", {"line_ids": [failed.pk]}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"  # no reason

    employer.sandbox.admin.open_wallet(wallet_id=rows[3][3], wallet_type="WT01", wallet_class=2, holder_name=rows[3][1])
    response = api.post(f"{url}/retry/", {"line_ids": [held.pk]}, format="json")
    # Held since the upload, the line was never approved: the preparer may not pay it, an approver may.
    assert response.status_code == 403 and response.json()["code"] == "not_an_approver"
    response = api_as(employer.approver).post(f"{url}/retry/", {"line_ids": [held.pk]}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "partially_paid"  # the failed line is left
    response = api.post(f"{url}/return/", {"line_ids": [failed.pk], "reason": "改用银行转账"}, format="json")
    assert response.status_code == 200
    lines = {line["line_no"]: line for line in api.get(f"{url}/lines/").json()["results"]}
    assert lines[held.line_no]["state"] == "settled"
    assert lines[failed.line_no]["hold_reason"] == "改用银行转账"

    receipt = api.post(f"{url}/summary-receipt/")
    assert receipt.status_code == 200, receipt.content
    body = receipt.json()
    assert body["batch_ref"] == batch.batch_ref and body["download_url"] == f"/receipts/{body['number']}.pdf"
    assert api.post(f"{url}/summary-receipt/").json()["number"] == body["number"]  # the same receipt

    closed = api.post(f"{url}/close/")
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert api.post(f"{url}/close/").status_code == 409
    assert api.post(f"{url}/retry/", {"line_ids": [failed.pk]}, format="json").status_code == 400
    response = api.post(f"{url}/return/", {"line_ids": [failed.pk], "reason": "x"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "not_paying"


def test_summary_receipt_waits_for_the_batch_to_be_paid(employer):
    batch = upload(employer, staff(employer, 2))
    response = api_as(employer.operator_user).post(f"/api/v1/payroll/batches/{batch.pk}/summary-receipt/")
    assert response.status_code == 400 and response.json()["code"] == "batch_not_finished"
    operator = logged_in(employer.operator_user)
    html = operator.get(reverse("payroll:batch-detail", args=[batch.pk])).content.decode()
    assert 'data-action="summary-receipt"' not in html
    response = operator.post(reverse("payroll:summary-receipt", args=[batch.pk]), follow=True)
    assert any("发放完成" in m for m in messages_of(response)), messages_of(response)


def test_the_batch_states_read_as_states_in_chinese_not_as_the_columns_of_the_same_words():
    from django.utils import translation

    from payroll.forms import BATCH_STATE_LABELS
    from payroll.models import BatchState

    with translation.override("zh-hans"):
        assert [str(BATCH_STATE_LABELS[s]) for s in (BatchState.UPLOADED, BatchState.APPROVED)] == ["已上传", "已审批"]
        assert translation.gettext("Uploaded") == "上传时间"  # the column heading is a time
