"""Every operation over real HTTP against the sandbox budget system, and its quota arithmetic
(adapters/budget/interface.py): accepted reserves, paid consumes, returned releases."""
import dataclasses

import pytest

from adapters.budget.client import get_budget_client
from adapters.budget.interface import PayType, RefusalCode, VoucherState
from adapters.budget.models import BudgetMessage
from tests.adapters.budget.conftest import QUOTA, QUOTA_AMOUNT_FEN, QUOTA_ID, report, voucher

pytestmark = pytest.mark.django_db


def figures(sandbox) -> tuple[int, int, int]:
    q = sandbox.admin.quota(quota_id=QUOTA_ID)
    return q["used_fen"], q["reserved_fen"], q["available_fen"]


def test_query_quotas_filters_and_converts_amounts(budget, sandbox):
    sandbox.admin.seed_demo()
    (mine,) = budget.query_quotas(quota_ids=(QUOTA_ID,))
    assert dataclasses.asdict(mine) == {**{k: v for k, v in QUOTA.items()}, "used_fen": 0, "reserved_fen": 0,
                                        "available_fen": QUOTA_AMOUNT_FEN}
    assert {q.agency_code for q in budget.query_quotas(agency_code="101002")} == {"101002"}
    assert len(budget.query_quotas(agency_code="101001", fiscal_year=2026)) == 3
    assert budget.query_quotas(fiscal_year=2025) == []
    assert len(budget.query_quotas()) == 6
    demo = budget.query_quotas(quota_ids=("ZB2026-101003-001",))[0]
    assert (demo.exp_func_code, demo.exp_eco_code, demo.amount_fen) == ("2080505", "30305", 12_000_000_00)


def test_accepted_voucher_reserves_paid_consumes_returned_releases(budget, sandbox):
    v = voucher(amounts=(100_00, 250_50, 30_00))
    ack = budget.submit_voucher(v)
    assert ack.accepted and not ack.duplicate and ack.key == v.voucher_no and ack.ack_id
    assert figures(sandbox) == (0, 380_50, QUOTA_AMOUNT_FEN - 380_50)
    assert budget.voucher_status(v.voucher_no).state == VoucherState.ACCEPTED

    first = budget.report_payment(report(v, lines=v.details[:2], returned=(1,)))  # 100 paid, 250.50 returned
    assert first.accepted and first.key.startswith("R")
    assert figures(sandbox) == (100_00, 30_00, QUOTA_AMOUNT_FEN - 130_00)
    status = budget.voucher_status(v.voucher_no)
    assert (status.state, status.reported_count, status.paid_fen, status.returned_fen) == (
        VoucherState.ACCEPTED, 2, 100_00, 250_50)

    budget.report_payment(report(v, lines=v.details[2:]))
    assert figures(sandbox) == (130_00, 0, QUOTA_AMOUNT_FEN - 130_00)  # nothing left reserved, used = paid
    status = budget.voucher_status(v.voucher_no)
    assert (status.state, status.line_count, status.reported_count, status.amount_fen) == (
        VoucherState.REPORTED, 3, 3, 380_50)
    lines = {line["tracking_id"]: line for line in sandbox.admin.voucher(voucher_no=v.voucher_no)["lines"]}
    assert lines[v.details[1].tracking_id]["state"] == "returned"
    assert lines[v.details[0].tracking_id]["paid_at"] == "2026-03-02T10:00:00+08:00"


def test_our_figures_agree_with_the_budget_systems(budget, sandbox):
    v = voucher(amounts=(500_00, 700_00))
    budget.submit_voucher(v)
    budget.report_payment(report(v, lines=v.details[:1]))
    (ours,) = budget.query_quotas(quota_ids=(QUOTA_ID,))
    theirs = sandbox.admin.quota(quota_id=QUOTA_ID)
    assert (ours.used_fen, ours.reserved_fen, ours.available_fen) == (
        theirs["used_fen"], theirs["reserved_fen"], theirs["available_fen"]) == (500_00, 700_00, QUOTA_AMOUNT_FEN - 1200_00)


def test_same_voucher_twice_reserves_once(budget, sandbox):
    v = voucher()
    first = budget.submit_voucher(v)
    again = budget.submit_voucher(v)
    assert again == dataclasses.replace(first, duplicate=True)
    assert figures(sandbox)[1] == v.amount_fen


def test_same_report_twice_applies_once(budget, sandbox):
    v = voucher()
    budget.submit_voucher(v)
    r = report(v)
    first = budget.report_payment(r)
    again = budget.report_payment(r)
    assert again.duplicate and again.accepted and again.ack_id == first.ack_id
    assert figures(sandbox)[:2] == (v.amount_fen, 0)
    assert budget.voucher_status(v.voucher_no).reported_count == 2


@pytest.mark.parametrize("change, code", [
    (dict(quota_id="NO-SUCH-QUOTA"), RefusalCode.QUOTA_NOT_FOUND),
    (dict(exp_eco_code="30101"), RefusalCode.CLASSIFICATION_MISMATCH),
    (dict(agency_code="101002"), RefusalCode.CLASSIFICATION_MISMATCH),
    (dict(pay_type_code=PayType.AUTHORISED), RefusalCode.CLASSIFICATION_MISMATCH),
    (dict(amount_fen=350_51), RefusalCode.AMOUNT_MISMATCH),
])
def test_voucher_refusals_reserve_nothing_and_stay_refused(budget, sandbox, change, code):
    v = voucher(**change)
    ack = budget.submit_voucher(v)
    assert (ack.accepted, ack.code) == (False, code) and ack.message
    assert figures(sandbox)[1] == 0
    status = budget.voucher_status(v.voucher_no)
    assert status.state == VoucherState.REFUSED and code in status.message
    assert budget.submit_voucher(v).duplicate  # a refusal is final for its number
    assert BudgetMessage.objects.filter(key=v.voucher_no, outcome="refused", code=code).count() == 2


def test_quota_insufficient_names_the_figures(budget, sandbox):
    sandbox.admin.set_quota_amount(quota_id=QUOTA_ID, amount_fen=300_00)
    ack = budget.submit_voucher(voucher(amounts=(200_00, 100_01)))
    assert ack.code == RefusalCode.QUOTA_INSUFFICIENT and "¥300.00" in ack.message
    assert budget.submit_voucher(voucher(amounts=(200_00, 100_00))).accepted  # exactly what is available
    assert figures(sandbox) == (0, 300_00, 0)


def test_report_refusals_apply_nothing(budget, sandbox):
    v = voucher(amounts=(100_00, 200_00))
    budget.submit_voucher(v)
    budget.report_payment(report(v, lines=v.details[:1]))

    assert budget.report_payment(report(voucher())).code == RefusalCode.VOUCHER_NOT_FOUND
    other = voucher()
    unknown = report(v, lines=other.details[:1])
    assert budget.report_payment(unknown).code == RefusalCode.LINE_UNKNOWN
    assert budget.report_payment(report(v)).code == RefusalCode.LINE_ALREADY_REPORTED  # line 1 again, other number
    twice = report(v, lines=(v.details[1], v.details[1]))
    assert budget.report_payment(twice).code == RefusalCode.LINE_ALREADY_REPORTED
    wrong = report(v, lines=v.details[1:])
    wrong = dataclasses.replace(wrong, lines=(dataclasses.replace(wrong.lines[0], amount_fen=199_99),))
    ack = budget.report_payment(wrong)
    assert ack.code == RefusalCode.AMOUNT_MISMATCH and v.details[1].tracking_id in ack.message

    assert figures(sandbox)[:2] == (100_00, 200_00)  # only the first report counted
    assert budget.voucher_status(v.voucher_no).reported_count == 1
    assert budget.report_payment(report(v, lines=v.details[1:])).accepted


def test_unknown_voucher_is_not_found(budget):
    status = budget.voucher_status("V-NEVER-SENT")
    assert (status.state, status.amount_fen, status.line_count) == (VoucherState.NOT_FOUND, 0, 0)


def test_get_budget_client_follows_settings_and_logs_every_call(budget_sandbox, db, settings):
    budget_sandbox.admin.create_quota(**QUOTA)
    client = get_budget_client()
    assert client is get_budget_client() and client.url == budget_sandbox.url
    assert settings.BUDGET_SYSTEM_API_KEY not in repr(client)
    client.query_quotas(agency_code="101001")
    v = voucher()
    client.submit_voucher(v)
    client.voucher_status(v.voucher_no)
    logged = list(BudgetMessage.objects.order_by("id").values_list("operation", "key", "outcome", "attempt",
                                                                   "http_status"))
    assert logged == [("QueryQuotas", "101001", "ok", 1, 200), ("SubmitVoucher", v.voucher_no, "ok", 1, 200),
                      ("QueryVoucherStatus", v.voucher_no, "ok", 1, 200)]
