"""A batch's payslips as a zip built in the background: request -> building (progress) -> ready -> download,
the same archive for a second request, a new one once payments change, failures, and scoping exactly like
the batch (another employer gets 404), by the service, the batch page and the API.

Batches are made with the ORM (lines and transfers in the states wanted); the task runs eagerly after
commit (`django_capture_on_commit_callbacks`).
"""
import io
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse

from payroll import payslips
from payroll.models import ArchiveState, BatchState, PayrollBatch, PayslipArchive
from payroll.services import PayrollError
from tests import factories as f
from tests.payroll.test_pages_api import api_as, logged_in
from tests.payroll.test_payslips import NOW, Payroll, text_of
from treasury.access import roles
from treasury.access.errors import AccessDenied
from treasury.models import Transfer, TransferState


@pytest.fixture
def payroll(db):
    """A batch being paid with three settled lines."""
    payroll = Payroll()
    payroll.lines = [payroll.line(), payroll.line(name="李四"), payroll.line(name="王五")]
    return payroll


def request(payroll, capture, *, user=None, execute=True) -> PayslipArchive:
    with capture(execute=execute):
        archive = payslips.request_payslip_archive(batch_id=payroll.batch.pk, user=user or payroll.clerk, now=NOW)
    return PayslipArchive.objects.get(pk=archive.pk)


def zip_names(archive: PayslipArchive) -> list[str]:
    with zipfile.ZipFile(payslips.archive_file(archive=archive)) as data:
        assert data.testzip() is None
        return data.namelist()


# ---------------------------------------------------------------------------------------------
# The service and the task
# ---------------------------------------------------------------------------------------------


def test_request_builds_a_ready_archive_with_one_payslip_per_line(payroll, django_capture_on_commit_callbacks):
    archive = request(payroll, django_capture_on_commit_callbacks)
    assert archive.state == ArchiveState.READY
    assert (archive.done_count, archive.total_count, archive.percent) == (3, 3, 100)
    assert archive.requested_by == payroll.clerk and archive.finished_at is not None and archive.error == ""
    assert archive.file_path.startswith(f"payroll/payslips/{payroll.batch.pk}/")
    names = zip_names(archive)
    assert names == [f"2025-06-{line.employee_no}.pdf" for line in payroll.lines]
    with zipfile.ZipFile(payslips.archive_file(archive=archive)) as data:
        for line, name in zip(payroll.lines, names):
            text = text_of(data.read(name))
            assert line.name in text and line.employee_no in text and "已到账" in text
    # Nothing but the zip is left in the directory (the temporary file was renamed into place).
    directory = payslips.archive_file(archive=archive).parent
    assert [p.name for p in directory.iterdir()] == [payslips.archive_file(archive=archive).name]


def test_a_second_request_while_building_gets_the_same_archive(payroll, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:  # the task is queued, not run yet
        first = payslips.request_payslip_archive(batch_id=payroll.batch.pk, user=payroll.clerk, now=NOW)
    assert len(queued) == 1 and first.state == ArchiveState.QUEUED
    approver = f.make_user(role=roles.EMPLOYER_APPROVER, organization=payroll.employer)
    with django_capture_on_commit_callbacks() as queued_again:
        second = payslips.request_payslip_archive(batch_id=payroll.batch.pk, user=approver, now=NOW)
    assert second.pk == first.pk and queued_again == []  # no second task either
    queued[0]()  # the worker takes it
    assert PayslipArchive.objects.get(pk=first.pk).state == ArchiveState.READY
    assert PayslipArchive.objects.count() == 1


def test_a_ready_archive_is_reused_until_the_payments_change(payroll, django_capture_on_commit_callbacks):
    first = request(payroll, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks() as queued:
        again = payslips.request_payslip_archive(batch_id=payroll.batch.pk, user=payroll.clerk, now=NOW)
    assert again.pk == first.pk and queued == []
    first_file = payslips.archive_file(archive=first)

    # A line's payment is returned by the operator after it settled: its payslip reads differently now.
    Transfer.objects.filter(pk=payroll.lines[1].transfer_id).update(state=TransferState.RETURNED,
                                                                   finished_at=NOW)
    assert not payslips.archive_is_current(archive=PayslipArchive.objects.get(pk=first.pk))
    second = request(payroll, django_capture_on_commit_callbacks)
    assert second.pk != first.pk and second.state == ArchiveState.READY
    with zipfile.ZipFile(payslips.archive_file(archive=second)) as data:
        assert "已到账后退回" in text_of(data.read(zip_names(second)[1]))
    # The older archive's file is removed once the newer one is ready; its row stays.
    first = PayslipArchive.objects.get(pk=first.pk)
    assert not first_file.exists() and first.file_path == "" and first.state == ArchiveState.READY
    with pytest.raises(PayrollError) as caught:
        payslips.archive_file(archive=first)
    assert caught.value.code == "archive_not_ready"


def test_progress_is_counted_while_building(payroll, django_capture_on_commit_callbacks, monkeypatch):
    payroll.lines += [payroll.line(), payroll.line()]  # five lines
    monkeypatch.setattr(payslips, "PROGRESS_EVERY", 2)
    seen = []
    record = payslips._record_progress

    def watch(archive_id, done):
        record(archive_id, done)
        archive = PayslipArchive.objects.get(pk=archive_id)
        seen.append((archive.state, archive.done_count, archive.total_count))

    monkeypatch.setattr(payslips, "_record_progress", watch)
    archive = request(payroll, django_capture_on_commit_callbacks)
    assert seen == [(ArchiveState.BUILDING, 2, 5), (ArchiveState.BUILDING, 4, 5), (ArchiveState.BUILDING, 5, 5)]
    assert archive.state == ArchiveState.READY and archive.done_count == 5


def test_a_failure_marks_the_archive_failed_with_a_message(payroll, django_capture_on_commit_callbacks, monkeypatch,
                                                           caplog, settings):
    render = payslips.payslip_pdf
    calls = []

    def breaks_on_the_second(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return render(**kwargs)

    monkeypatch.setattr(payslips, "payslip_pdf", breaks_on_the_second)
    archive = request(payroll, django_capture_on_commit_callbacks)
    assert archive.state == ArchiveState.FAILED and archive.finished_at is not None
    assert "生成工资条失败" in archive.error and "OSError" in archive.error and archive.file_path == ""
    assert "payslip archive" in caplog.text  # the traceback is logged
    assert list(Path(settings.MEDIA_ROOT).rglob("*.part")) == []  # the half-written file is removed
    with pytest.raises(PayrollError):
        payslips.archive_file(archive=archive)

    # A failed archive is not reused: asking again builds a new one.
    monkeypatch.setattr(payslips, "payslip_pdf", render)
    again = request(payroll, django_capture_on_commit_callbacks)
    assert again.pk != archive.pk and again.state == ArchiveState.READY and len(zip_names(again)) == 3


def test_the_task_delivered_twice(payroll, django_capture_on_commit_callbacks):
    from payroll.tasks import build_payslip_archive_task

    archive = request(payroll, django_capture_on_commit_callbacks)
    finished_at = archive.finished_at
    build_payslip_archive_task.apply(kwargs={"archive_id": archive.pk})  # after it finished: nothing happens
    assert PayslipArchive.objects.get(pk=archive.pk).finished_at == finished_at

    # Its worker died while building: the next delivery builds it again from the start.
    Transfer.objects.filter(pk=payroll.lines[0].transfer_id).update(state=TransferState.FAILED)
    stuck = request(payroll, django_capture_on_commit_callbacks, execute=False)
    PayslipArchive.objects.filter(pk=stuck.pk).update(state=ArchiveState.BUILDING, done_count=2)
    build_payslip_archive_task.apply(kwargs={"archive_id": stuck.pk})
    stuck = PayslipArchive.objects.get(pk=stuck.pk)
    assert stuck.state == ArchiveState.READY and stuck.done_count == 3 and len(zip_names(stuck)) == 3


def test_only_a_batch_being_paid_has_payslips(payroll, django_capture_on_commit_callbacks):
    PayrollBatch.objects.filter(pk=payroll.batch.pk).update(state=BatchState.APPROVED)
    with pytest.raises(PayrollError) as caught:
        request(payroll, django_capture_on_commit_callbacks)
    assert caught.value.code == "batch_not_paying" and not PayslipArchive.objects.exists()


def test_another_employer_cannot_ask(payroll, django_capture_on_commit_callbacks):
    outsider = f.make_user(role=roles.EMPLOYER_OPERATOR, organization=f.make_organization(name="乙"))
    with pytest.raises(AccessDenied) as caught:
        request(payroll, django_capture_on_commit_callbacks, user=outsider)
    assert caught.value.code == "not_found" and not PayslipArchive.objects.exists()


# ---------------------------------------------------------------------------------------------
# The batch page
# ---------------------------------------------------------------------------------------------


def test_batch_page_prepares_follows_and_downloads(payroll, django_capture_on_commit_callbacks):
    clerk = logged_in(payroll.clerk)
    page_url = reverse("payroll:batch-detail", args=[payroll.batch.pk])
    html = clerk.get(page_url).content.decode()
    assert 'data-action="prepare-payslips"' in html and 'data-testid="payslips-download"' not in html

    # Queued (no worker yet): the page shows the progress and polls it.
    with django_capture_on_commit_callbacks() as queued:
        response = clerk.post(reverse("payroll:payslips-request", args=[payroll.batch.pk]))
    assert response.status_code == 302 and response.url == page_url + "#payslips"
    archive = PayslipArchive.objects.get()
    progress_url = reverse("payroll:payslips-progress", args=[payroll.batch.pk, archive.pk])
    html = clerk.get(page_url).content.decode()
    assert f'data-progress-url="{progress_url}"' in html and 'data-action="prepare-payslips"' not in html
    data = clerk.get(progress_url).json()
    assert (data["state"], data["done_count"], data["total_count"], data["building"]) == ("queued", 0, 3, True)
    assert data["download_url"] is None

    queued[0]()
    data = clerk.get(progress_url).json()
    assert (data["state"], data["done_count"], data["percent"], data["building"]) == ("ready", 3, 100, False)
    download_url = reverse("payroll:payslips-download", args=[payroll.batch.pk, archive.pk])
    assert data["download_url"] == download_url and data["current"] is True
    html = clerk.get(page_url).content.decode()
    assert f'href="{download_url}"' in html
    response = clerk.get(download_url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert f"payslips-2025-06-batch{payroll.batch.pk}.zip" in response["Content-Disposition"]
    data = b"".join(response.streaming_content)
    assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 3


def test_batch_page_shows_a_failure_and_offers_to_try_again(payroll, django_capture_on_commit_callbacks):
    archive = request(payroll, django_capture_on_commit_callbacks, execute=False)
    PayslipArchive.objects.filter(pk=archive.pk).update(state=ArchiveState.FAILED, error="生成工资条失败 [OSError]")
    html = logged_in(payroll.clerk).get(reverse("payroll:batch-detail", args=[payroll.batch.pk])).content.decode()
    assert 'data-testid="archive-error">生成工资条失败 [OSError]' in html and 'data-action="prepare-payslips"' in html
    download = reverse("payroll:payslips-download", args=[payroll.batch.pk, archive.pk])
    assert logged_in(payroll.clerk).get(download).status_code == 404


def test_pages_are_scoped_like_the_batch(payroll, django_capture_on_commit_callbacks):
    archive = request(payroll, django_capture_on_commit_callbacks)
    outsider = logged_in(f.make_user(role=roles.EMPLOYER_OPERATOR, organization=f.make_organization(name="乙")))
    batch_id = payroll.batch.pk
    assert outsider.post(reverse("payroll:payslips-request", args=[batch_id])).status_code == 404
    assert outsider.get(reverse("payroll:payslips-progress", args=[batch_id, archive.pk])).status_code == 404
    assert outsider.get(reverse("payroll:payslips-download", args=[batch_id, archive.pk])).status_code == 404
    # An archive is reached only through its own batch: another employer's batch id does not lead to it.
    other = Payroll()  # another employer's batch
    other_client = logged_in(other.clerk)
    assert other_client.get(reverse("payroll:payslips-download", args=[other.batch.pk, archive.pk])).status_code == 404
    assert PayslipArchive.objects.count() == 1

    # Auditors see every batch: they may prepare and download its payslips, and change nothing else.
    auditor = logged_in(f.make_user(role=roles.AUDITOR))
    assert auditor.get(reverse("payroll:payslips-download", args=[batch_id, archive.pk])).status_code == 200
    assert auditor.post(reverse("payroll:payslips-request", args=[batch_id])).status_code == 302
    assert PayslipArchive.objects.count() == 1  # the ready archive was still current


# ---------------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------------


def test_api_request_status_download(payroll, django_capture_on_commit_callbacks):
    api = api_as(payroll.clerk)
    url = reverse("api-payroll-batch-payslip-archives", args=[payroll.batch.pk])
    with django_capture_on_commit_callbacks() as queued:
        response = api.post(url)
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["state"], body["done_count"], body["total_count"], body["download_url"]) == ("queued", 0, 3, None)
    status_url = reverse("api-payroll-batch-payslip-archive", kwargs={"pk": payroll.batch.pk,
                                                                      "archive_id": body["id"]})
    download_url = reverse("api-payroll-batch-payslip-archive-download", kwargs={"pk": payroll.batch.pk,
                                                                                 "archive_id": body["id"]})
    not_ready = api.get(download_url)
    assert not_ready.status_code == 409 and not_ready.json()["code"] == "archive_not_ready"
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(url).json()["id"] == body["id"]  # the same archive while it waits
    queued[0]()

    body = api.get(status_url).json()
    assert (body["state"], body["done_count"], body["percent"]) == ("ready", 3, 100)
    assert body["download_url"] == download_url and body["requested_by"] == payroll.clerk.username
    response = api.get(download_url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert len(zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()) == 3
    again = api.post(url)
    assert again.status_code == 200 and again.json()["id"] == body["id"]  # ready and current: reused


def test_api_is_scoped_like_the_batch(payroll, django_capture_on_commit_callbacks):
    archive = request(payroll, django_capture_on_commit_callbacks)
    outsider = api_as(f.make_user(role=roles.EMPLOYER_APPROVER, organization=f.make_organization(name="乙")))
    kwargs = {"pk": payroll.batch.pk, "archive_id": archive.pk}
    assert outsider.post(reverse("api-payroll-batch-payslip-archives", args=[payroll.batch.pk])).status_code == 404
    assert outsider.get(reverse("api-payroll-batch-payslip-archive", kwargs=kwargs)).status_code == 404
    assert outsider.get(reverse("api-payroll-batch-payslip-archive-download", kwargs=kwargs)).status_code == 404
    PayrollBatch.objects.filter(pk=payroll.batch.pk).update(state=BatchState.FUNDED)
    refused = api_as(payroll.clerk).post(reverse("api-payroll-batch-payslip-archives", args=[payroll.batch.pk]))
    assert refused.status_code == 409 and refused.json()["code"] == "batch_not_paying"
