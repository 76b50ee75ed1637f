"""A finance bureau with funded zero-balance accounts at the sandbox operator, quotas at the sandbox
budget system, payees with opened wallets, and the shortcuts the service tests use."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from django.utils import timezone

from adapters.ecny.interface import Conditions
from fiscal_disbursement import services
from tests import factories as f
from treasury.models import Organization, Wallet

OPERATOR_CODE = "200"
AGENCY_CODE = "101001"
QUOTA_ID = "ZB2026-0001"  # direct payment, 1 million yuan
UNIT_QUOTA_ID = "ZB2026-0002"  # authorised payment, 200,000 yuan
HEADER = ["序号", "收款人", "证件号码", "钱包编号", "金额", "用途"]


@dataclass
class Finance:
    bureau: Organization
    agency: Organization
    fiscal_wallet: Wallet
    unit_wallet: Wallet
    clerk: object
    approver: object
    approver2: object
    ecny: object  # the operator sandbox handle
    budget: object  # the budget-system sandbox handle
    payees: list = field(default_factory=list)  # rows: [name, id number, wallet id]


def payee_rows(finance: Finance, count: int, *, wallet_class: int = 2, open_wallets: bool = True) -> list[list[str]]:
    """`count` new personal payees, their wallets opened at the operator (unless told not to)."""
    rows = []
    for _ in range(count):
        person_name = f"受助人{len(finance.payees) + len(rows) + 1}"
        rows.append([person_name, f.make_resident_id(), f.make_wallet_id(operator_code=OPERATOR_CODE)])
    if open_wallets:
        finance.ecny.admin.open_wallets(wallets=[
            {"wallet_id": w, "wallet_type": "WT01", "wallet_class": wallet_class, "holder_name": name}
            for name, _, w in rows
        ])
    finance.payees += rows
    return rows


def organization_payee(finance: Finance) -> list[str]:
    """A company as payee, with a corporate wallet (WT09) opened at the operator."""
    name, uscc, wallet_id = "示范养老服务有限公司", f.make_uscc(), f.make_wallet_id(operator_code=OPERATOR_CODE)
    finance.ecny.admin.open_wallet(wallet_id=wallet_id, wallet_type="WT09", holder_name=name)
    return [name, uscc, wallet_id]


def payee_csv(rows: list[list[str]], amount_yuan: str = "1000.00") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for n, row in enumerate(rows, start=1):
        amount = row[3] if len(row) > 3 else amount_yuan
        writer.writerow([n, row[0], row[1], row[2], amount, "2026年高龄津贴"])
    return out.getvalue().encode("utf-8")


def draft(finance: Finance, rows, *, conditions: Conditions | None = None, amount_yuan: str = "1000.00",
          pay_type: str = "1", quota_id: str = QUOTA_ID):
    return services.create_request(
        user=finance.clerk, quota_id=quota_id, pay_type=pay_type, title="2026年11月高龄津贴", now=timezone.now(),
        conditions=conditions, filename="payees.csv", data=payee_csv(rows, amount_yuan),
    )


def submitted(finance: Finance, rows, **kwargs):
    request = draft(finance, rows, **kwargs)
    assert request.problem_count == 0, request.problems
    return services.submit_request(request_id=request.pk, user=finance.clerk, now=timezone.now())


def approved(finance: Finance, rows, **kwargs):
    """Submitted and approved: with Celery eager the voucher is sent and paying runs at commit."""
    request = submitted(finance, rows, **kwargs)
    return services.approve_request(request_id=request.pk, user=finance.approver, now=timezone.now())


def refreshed(request):
    request.refresh_from_db()
    return request
