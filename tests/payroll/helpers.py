"""An employer with a funded corporate wallet at the sandbox operator, its staff, and its payroll runs."""
from dataclasses import dataclass

from django.utils import timezone

from payroll import services
from tests.payroll import builders
from treasury.models import Organization, Wallet

OPERATOR_CODE = "100"  # the builders' wallet ids start with it


@dataclass
class Employer:
    org: Organization
    wallet: Wallet
    operator_user: object
    approver: object
    sandbox: object


def staff(employer, count, *, start=1, wallet_class=2, skip=()):
    """Employee rows, with their wallets opened at the operator (except those in `skip`)."""
    rows = [builders.employee_row(i) for i in range(start, start + count)]
    employer.sandbox.admin.open_wallets(wallets=[
        {"wallet_id": row[3], "wallet_type": "WT01", "wallet_class": wallet_class, "holder_name": row[1]}
        for index, row in enumerate(rows) if index not in skip
    ])
    return rows


def csv_file(rows) -> bytes:
    return builders.to_csv(builders.payroll_rows(rows))


def upload(employer, rows, **kwargs):
    return services.import_payroll_file(employer=employer.org, user=employer.operator_user, filename="工资.csv",
                                        data=csv_file(rows), now=timezone.now(), **kwargs)


def approved_and_funded(employer, rows, **kwargs):
    batch = upload(employer, rows, **kwargs)
    now = timezone.now()
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    services.approve_batch(batch_id=batch.pk, user=employer.approver, now=now)
    return services.fund_batch(batch_id=batch.pk, user=employer.approver, now=now)
