"""The payroll API refuses what the database cannot hold and what the state does not allow before anything
else: line ids out of range (400, not a server error), a union member's dues base past a 64-bit fen amount,
funding a batch that is not approved (409, without asking the operator), and a member's wallet check while
the operator is away (503 try again, nothing stored; it was a 500)."""
import pytest
from django.utils import timezone

from adapters.ecny.interface import OperatorUnavailable
from payroll import services
from payroll.models import BatchState, PayrollBatch, UnionMember
from tests.clients import api_as
from tests.payroll.helpers import staff, upload
from tests.payroll.test_pages_api import partially_paid
from treasury.services import wallets

pytestmark = pytest.mark.django_db(transaction=True)

HUGE = 18449125068513158400383969


class Unreachable:
    def __getattr__(self, name):
        def call(*args, **kwargs):
            raise OperatorUnavailable("connection refused")
        return call


def test_line_ids_out_of_range_are_refused_and_nothing_moves(employer):
    rows, batch, lines = partially_paid(employer)
    api = api_as(employer.approver)
    url = f"/api/v1/payroll/batches/{batch.pk}"
    for path, body in (("retry", {"line_ids": [HUGE]}), ("return", {"line_ids": [lines[1].pk, HUGE], "reason": "x"}),
                       ("retry", {"line_ids": [2**63]})):
        response = api.post(f"{url}/{path}/", body, format="json")
        assert response.status_code == 400, (path, response.content[:300])
        assert response.json()["code"] == "invalid" and "line_ids" in response.json()["details"]
    batch.refresh_from_db()
    assert batch.state == BatchState.PARTIALLY_PAID
    lines[1].refresh_from_db()
    assert lines[1].attempts == 1 and not lines[1].returned


def test_funding_a_batch_that_is_not_approved_is_a_state_conflict_without_asking_the_operator(employer, monkeypatch):
    batch = upload(employer, staff(employer, 2))
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    monkeypatch.setattr(wallets, "_operator", lambda: Unreachable())  # were it asked, the answer would be 503
    response = api_as(employer.approver).post(f"/api/v1/payroll/batches/{batch.pk}/fund/")
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"
    services.cancel_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now(), reason="wrong month")
    response = api_as(employer.approver).post(f"/api/v1/payroll/batches/{batch.pk}/fund/")
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.CANCELLED


def test_a_member_while_the_operator_is_away_is_try_again_and_nothing_is_stored(employer, grassroots, monkeypatch):
    from tests.payroll.test_union_members import csv_line, members_csv
    from django.core.files.uploadedfile import SimpleUploadedFile

    rows = staff(employer, 2)
    api = api_as(employer.operator_user)
    url = f"/api/v1/payroll/unions/{grassroots.pk}/members/"
    body = {"employee_no": rows[0][0], "name": rows[0][1], "resident_id": rows[0][2], "wallet_id": rows[0][3],
            "dues_base_fen": 800_000, "standing_authorisation": True}
    too_big = api.post(url, {**body, "dues_base_fen": 2**63}, format="json")
    assert too_big.status_code == 400 and "dues_base_fen" in too_big.json()["details"]

    monkeypatch.setattr(wallets, "_operator", lambda: Unreachable())
    response = api.post(url, body, format="json")
    assert response.status_code == 503 and response.json()["code"] == "operator_unavailable"
    imported = api.post(f"{url}import/", {"file": SimpleUploadedFile(
        "会员.csv", members_csv([csv_line(rows[1])]), content_type="text/csv")}, format="multipart")
    assert imported.status_code == 503 and imported.json()["code"] == "operator_unavailable"
    assert not UnionMember.objects.exists()


def test_retrying_a_held_line_before_paying_is_refused_without_asking_the_operator(employer, monkeypatch):
    batch = upload(employer, staff(employer, 2, skip=(1,)), hold_invalid_lines=True)
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    held = batch.lines.get(held=True)
    monkeypatch.setattr(wallets, "_operator", lambda: Unreachable())  # were it asked, the answer would be 503
    response = api_as(employer.approver).post(f"/api/v1/payroll/batches/{batch.pk}/retry/", {"line_ids": [held.pk]},
                                              format="json")
    assert response.status_code == 400 and response.json()["code"] == "not_paying"
    held.refresh_from_db()
    assert held.held and held.attempts == 0 and held.transfer_id is None
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.SUBMITTED


def test_a_client_names_the_lines_to_retry_and_return_from_the_lines_it_reads(employer):
    """The lines answer carries each line's id, which retry/ and return/ take: a client never had it."""
    rows, batch, lines = partially_paid(employer)
    api = api_as(employer.approver)
    url = f"/api/v1/payroll/batches/{batch.pk}"
    listed = api.get(f"{url}/lines/").json()["results"]
    by_state = {}
    for line in listed:
        by_state.setdefault(line["state"], []).append(line)
    assert [line["id"] for line in by_state["failed"]] == [lines[1].pk]
    assert [line["id"] for line in by_state["held"]] == [lines[3].pk]
    returned = api.post(f"{url}/return/", {"line_ids": [by_state["held"][0]["id"]], "reason": "离职 (left)"},
                        format="json")
    assert returned.status_code == 200, returned.content
    employer.sandbox.admin.set_status(wallet_id=rows[1][3], status="active")
    retried = api.post(f"{url}/retry/", {"line_ids": [by_state["failed"][0]["id"]]}, format="json")
    assert retried.status_code == 200, retried.content
    lines[1].refresh_from_db()
    assert lines[1].attempts == 2
