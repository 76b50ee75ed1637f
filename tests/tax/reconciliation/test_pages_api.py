"""Reconciliation pages and API as tax staff meet them: the day's run with its totals per outcome, the
result rows by outcome (personal data masked), the cases with investigate / resolve (reason required,
CSRF), "run now", the CSV and PDF reports; scoping (another tax authority's case is a 404, its results
are not shown), auditors and administrators read only."""
from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from tax.handlers import TaxHandler
from tax.reconciliation import services
from tax.reconciliation.models import CaseState, DiscrepancyCase, Outcome, ReconciliationRun, RunState
from tests.clients import api_as, logged_in
from tests import factories as f
from tests.tax.reconciliation.conftest import ENTRUST_DATE, TAX_ORG_CODE, check_detail, planted_lines, planted_statement
from treasury.access import roles
from treasury.identifiers import mask_wallet_id

API = "/api/v1/tax/reconciliation"


@pytest.fixture
def run(day):
    TaxHandler().receive_check_detail(check_detail(planted_lines(day)))
    return services.reconcile(check_date=ENTRUST_DATE, now=timezone.now(), statement_rows=planted_statement(day))


@pytest.fixture
def readers(tax):
    return {"auditor": f.make_user(role=roles.AUDITOR), "admin": f.make_user(role=roles.ADMIN)}


def test_runs_list_and_run_detail_show_totals_and_rows_by_outcome(run, day, tax):
    client = logged_in(tax.staff)
    html = client.get(reverse("tax:reconciliation")).content.decode()
    assert f'data-run="{run.pk}"' in html and 'data-outcome="amount_mismatch"' in html
    assert f'data-testid="discrepancies">{run.discrepancy_count}<' in html
    response = client.get(reverse("tax:reconciliation-run", args=[run.pk]))
    totals = response.context["totals"]
    assert totals["discrepancies"] == run.discrepancy_count > 0
    assert {o["outcome"]: o["count"] for o in totals["outcomes"]} == {k: v["count"] for k, v in run.totals.items()}
    html = client.get(reverse("tax:reconciliation-run", args=[run.pk]), {"outcome": Outcome.AMOUNT_MISMATCH}).content.decode()
    assert html.count('data-outcome="amount_mismatch"') >= 2  # the totals row and the one result row
    assert f'data-tra-no="{day["amount"].tra_no}"' in html and f'data-tra-no="{day["matched"].tra_no}"' not in html
    wallet = day["amount"].pay_acct
    assert wallet not in html and mask_wallet_id(wallet) in html


def test_cases_investigate_and_resolve_with_a_reason(run, day, tax):
    client = logged_in(tax.staff)
    case = DiscrepancyCase.objects.get(outcome=Outcome.AMOUNT_MISMATCH)
    html = client.get(reverse("tax:reconciliation-cases")).content.decode()
    assert f'data-case="{case.pk}"' in html
    assert 'data-testid="case-actions"' in client.get(reverse("tax:reconciliation-case", args=[case.pk])).content.decode()
    client.post(reverse("tax:reconciliation-case-investigate", args=[case.pk]), {"note": "asked the tax system"})
    case.refresh_from_db()
    assert case.state == CaseState.INVESTIGATING
    response = client.post(reverse("tax:reconciliation-case-resolve", args=[case.pk]), {"reason": "  "}, follow=True)
    assert "请填写处理说明。" in response.content.decode()
    case.refresh_from_db()
    assert case.state == CaseState.INVESTIGATING
    client.post(reverse("tax:reconciliation-case-resolve", args=[case.pk]), {"reason": "tax system corrected its record"})
    case.refresh_from_db()
    assert case.state == CaseState.RESOLVED and case.reason == "tax system corrected its record"
    assert case.resolved_by == tax.staff.username
    # The history in local time (Beijing, as the footer says) with the states by their labels; our side's
    # deduction state by its label too.
    html = client.get(reverse("tax:reconciliation-case", args=[case.pk])).content.decode()
    resolved_at = timezone.localtime(case.resolved_at)
    assert f"{resolved_at:%Y-%m-%d %H:%M:%S}" in html and case.resolved_at.isoformat() not in html
    assert "调查中 (investigating)" in html and "已解决 (resolved)" in html
    assert "扣款成功 (succeeded)" in html and ">succeeded " not in html


def test_posts_need_the_csrf_token(run, tax):
    case = DiscrepancyCase.objects.get(outcome=Outcome.AMOUNT_MISMATCH)
    client = logged_in(tax.staff, enforce_csrf_checks=True)
    assert client.post(reverse("tax:reconciliation-case-resolve", args=[case.pk]), {"reason": "x"}).status_code == 403
    case.refresh_from_db()
    assert case.state == CaseState.OPEN


def test_another_tax_authority_sees_neither_the_cases_nor_the_rows(run, tax):
    case = DiscrepancyCase.objects.get(outcome=Outcome.AMOUNT_MISMATCH)
    client = logged_in(tax.other_staff)
    assert client.get(reverse("tax:reconciliation-case", args=[case.pk])).status_code == 404
    assert client.post(reverse("tax:reconciliation-case-resolve", args=[case.pk]), {"reason": "x"}).status_code == 404
    response = client.get(reverse("tax:reconciliation-run", args=[run.pk]))
    assert response.status_code == 200 and response.context["totals"]["count"] == 0
    assert api_as(tax.other_staff).get(f"{API}/cases/{case.pk}/").status_code == 404
    assert api_as(tax.other_staff).get(f"{API}/runs/{run.pk}/results/").json()["count"] == 0


def test_auditors_and_administrators_read_only(run, tax, readers):
    case = DiscrepancyCase.objects.get(outcome=Outcome.AMOUNT_MISMATCH)
    for user in readers.values():
        client = logged_in(user)
        for url in [reverse("tax:reconciliation"), reverse("tax:reconciliation-run", args=[run.pk]),
                    reverse("tax:reconciliation-cases"), reverse("tax:reconciliation-case", args=[case.pk])]:
            assert client.get(url).status_code == 200, (user, url)
        assert 'data-testid="case-actions"' not in client.get(
            reverse("tax:reconciliation-case", args=[case.pk])).content.decode()
        assert 'data-testid="run-now"' not in client.get(reverse("tax:reconciliation")).content.decode()
        assert client.post(reverse("tax:reconciliation-case-resolve", args=[case.pk]), {"reason": "x"}).status_code == 403
        assert client.post(reverse("tax:reconciliation-run-now"), {"check_date": "2025-01-01"}).status_code == 403
        api = api_as(user)
        assert api.get(f"{API}/cases/{case.pk}/").json()["available_actions"] == []
        assert api.post(f"{API}/cases/{case.pk}/resolve/", {"reason": "x"}, format="json").status_code == 403
    case.refresh_from_db()
    assert case.state == CaseState.OPEN
    employer = f.make_user(role=roles.EMPLOYER_OPERATOR)
    assert logged_in(employer).get(reverse("tax:reconciliation")).status_code == 403
    assert api_as(employer).get(f"{API}/runs/").status_code == 403


def test_run_now_reconciles_the_users_tax_authority(run, tax):
    client = logged_in(tax.staff)
    response = client.post(reverse("tax:reconciliation-run-now"), {"check_date": ENTRUST_DATE.isoformat()})
    own = ReconciliationRun.objects.get(check_date=ENTRUST_DATE, tax_org_code=TAX_ORG_CODE)
    assert response.status_code == 302 and response["Location"] == reverse("tax:reconciliation-run", args=[own.pk])
    assert own.state == RunState.DONE and own.runs == 1
    waiting = client.post(reverse("tax:reconciliation-run-now"), {"check_date": "2001-01-01"}, follow=True)
    assert "check detail not complete" in waiting.content.decode()


def test_csv_and_pdf_reports(run, day, tax):
    client = logged_in(tax.staff)
    response = client.get(reverse("tax:reconciliation-run-csv", args=[run.pk]))
    text = response.content.decode("utf-8-sig")
    lines = text.strip().splitlines()
    # a row per serial that is not matched, then one line with the matched count
    assert response["Content-Type"].startswith("text/csv") and len(lines) == 1 + sum(
        v["count"] for k, v in run.totals.items() if k != Outcome.MATCHED) + 1
    assert lines[-1].split(",")[:2] == ["相符 matched", str(run.totals[Outcome.MATCHED]["count"])]
    assert run.totals[Outcome.MATCHED]["count"] == 2
    assert any(day["amount"].tra_no in line and Outcome.AMOUNT_MISMATCH in line for line in lines)
    pdf = client.get(reverse("tax:reconciliation-run-pdf", args=[run.pk]))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


def test_api_runs_results_and_cases(run, day, tax):
    api = api_as(tax.staff)
    runs = api.get(f"{API}/runs/").json()
    assert runs["results"][0]["id"] == run.pk
    assert runs["results"][0]["totals"]["discrepancies"] == run.discrepancy_count
    results = api.get(f"{API}/runs/{run.pk}/results/", {"outcome": Outcome.AMOUNT_MISMATCH}).json()
    assert [r["tra_no"] for r in results["results"]] == [day["amount"].tra_no]
    assert results["results"][0]["pay_acct"] == mask_wallet_id(day["amount"].pay_acct)
    assert api.get(f"{API}/runs/{run.pk}/results/", {"outcome": "nonsense"}).status_code == 400
    case = DiscrepancyCase.objects.get(outcome=Outcome.AMOUNT_MISMATCH)
    assert api.get(f"{API}/cases/", {"state": "open"}).json()["count"] == DiscrepancyCase.objects.count()
    assert api.get(f"{API}/cases/{case.pk}/").json()["available_actions"] == ["investigate", "resolve"]
    assert api.post(f"{API}/cases/{case.pk}/investigate/", {"note": "n"}, format="json").json()["state"] == "investigating"
    assert api.post(f"{API}/cases/{case.pk}/investigate/", {}, format="json").json()["code"] == "invalid_state"
    missing = api.post(f"{API}/cases/{case.pk}/resolve/", {"reason": ""}, format="json")
    assert missing.status_code == 400 and missing.json()["code"] == "reason_required"
    resolved = api.post(f"{API}/cases/{case.pk}/resolve/", {"reason": "corrected"}, format="json").json()
    assert resolved["state"] == "resolved" and resolved["reason"] == "corrected"
    created = api.post(f"{API}/runs/", {"check_date": ENTRUST_DATE.isoformat()}, format="json")
    # Queued for a worker (202); Celery runs in this process here, so the run is done by the answer.
    assert created.status_code == 202 and created.json()["tax_org_code"] == TAX_ORG_CODE
    assert (created.json()["state"], created.json()["step"], created.json()["failure"]) == ("done", "", "")
