"""Trace fixtures: two organizations with wallets and transfers, users with roles, a signing key,
and helpers that append events and tamper with stored rows."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection, transaction

from treasury import keys
from treasury.access.models import Membership
from treasury.access.roles import ADMIN, AUDITOR, EMPLOYER_OPERATOR
from treasury.models import Organization, Person, Transfer, TransferState, Wallet
from treasury.trace.services import EventSpec, append_events

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=dt_timezone.utc)  # 09:30 in Shanghai


@pytest.fixture(autouse=True)
def signing_key(settings, tmp_path):
    """A fresh service key per test, never the development key under var/."""
    settings.SERVICE_SIGNING_KEY_FILE = tmp_path / "keys" / "service-ed25519.pem"
    settings.SERVICE_SIGNING_KEY_CREATE = True
    keys.service_private_key.cache_clear()
    yield settings.SERVICE_SIGNING_KEY_FILE
    keys.service_private_key.cache_clear()


def append(stream_key: str, specs: list[EventSpec], *, now: datetime = T0):
    with transaction.atomic():
        return append_events(stream_key=stream_key, events=specs, now=now)


def spec(n: int, *, subject_id: str | None = None, kind: str = "transfer.created", amount_fen: int | None = 100,
         source_ref: str = "", data: dict | None = None) -> EventSpec:
    return EventSpec(kind=kind, subject_type="treasury.transfer", subject_id=subject_id or str(n), actor="clerk_a",
                     amount_fen=amount_fen, source_ref=source_ref, data=data if data is not None else {"n": n})


@pytest.fixture
def tamper(db):
    """Run raw SQL against trace tables, switching off the PostgreSQL append-only triggers for the
    duration of the test (the test's transaction rollback switches them back on)."""
    tables = ("trace_traceevent", "trace_tracecheckpoint", "trace_tracecheckpointhead")

    def run(sql: str, params=()):
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql" and not getattr(run, "disabled", False):
                # ALTER TABLE refuses while deferred foreign-key checks are pending: run them now.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                for table in tables:
                    cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
                run.disabled = True
            cursor.execute(sql, list(params))
            return cursor.rowcount

    return run


@dataclass
class World:
    org_a: Organization
    org_b: Organization
    operator: Organization
    wallet_a: Wallet  # org A's corporate wallet
    wallet_b: Wallet
    staff_wallet: Wallet  # a person's wallet paid by org A
    transfer_a: Transfer
    transfer_a2: Transfer
    transfer_b: Transfer
    user_a: User
    user_b: User
    auditor: User
    admin: User
    nobody: User  # signed in, no organization, no role


def _user(username: str, *, org: Organization | None = None, role: str | None = None) -> User:
    user = User.objects.create_user(username=username, password="correct horse battery")
    if org is not None:
        Membership.objects.create(user=user, organization=org)
    if role is not None:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def world(db) -> World:
    operator = Organization.objects.create(name="试点运营机构", org_type=Organization.Type.OPERATOR_BANK,
                                           uscc="91350100M000100Y43", code="101")
    org_a = Organization.objects.create(name="甲单位", org_type=Organization.Type.EMPLOYER, uscc="91310110666007217T")
    org_b = Organization.objects.create(name="乙单位", org_type=Organization.Type.EMPLOYER, uscc="91310115591693856A")
    person = Person.objects.create(name="张三丰", resident_id="11010519491231002X")
    wallet_a = Wallet.objects.create(wallet_id="1010000000000001", wallet_type=Wallet.Type.CORPORATE,
                                     operator=operator, holder_org=org_a, holder_name="甲单位")
    wallet_b = Wallet.objects.create(wallet_id="1010000000000002", wallet_type=Wallet.Type.CORPORATE,
                                     operator=operator, holder_org=org_b, holder_name="乙单位")
    staff_wallet = Wallet.objects.create(wallet_id="1010000000000003", wallet_type=Wallet.Type.PERSONAL,
                                         wallet_class=2, operator=operator, holder_person=person,
                                         holder_name="张三丰")

    def transfer(key, org, payer, payee, amount, batch, source_ref, state):
        return Transfer.objects.create(
            idempotency_key=key, payer=payer, payee=payee, amount_fen=amount, organization=org, batch_ref=batch,
            source_ref=source_ref, created_by="clerk", created_at=T0, state=state,
        )

    transfer_a = transfer("PAY-A-0001", org_a, wallet_a, staff_wallet, 1_234_567, "BATCH-A", "payroll.line:1",
                          TransferState.SETTLED)
    transfer_a2 = transfer("PAY-A-0002", org_a, wallet_a, wallet_b, 50_000, "BATCH-A", "payroll.line:2",
                           TransferState.SUBMITTED)
    transfer_b = transfer("PAY-B-0001", org_b, wallet_b, staff_wallet, 88_800, "BATCH-B", "voucher:77",
                          TransferState.SETTLED)

    def events_for(t: Transfer, kinds):
        return [
            EventSpec(kind=kind, subject_type="treasury.transfer", subject_id=str(t.pk), actor=actor,
                      amount_fen=t.amount_fen, source_ref=t.source_ref,
                      data={"key": t.idempotency_key, "payer": t.payer.wallet_id, "payee": t.payee.wallet_id})
            for kind, actor in kinds
        ]

    append("BATCH-A", [EventSpec(kind="payroll.batch.approved", subject_type="payroll.batch", subject_id="1",
                                 actor="approver_a", amount_fen=1_284_567, source_ref="payroll.batch:1",
                                 data={"lines": 2})], now=T0)
    append("BATCH-A", events_for(transfer_a, [("transfer.created", "clerk_a")])
           + events_for(transfer_a2, [("transfer.created", "clerk_a")]), now=T0 + timedelta(seconds=1))
    append("BATCH-A", events_for(transfer_a, [("transfer.submitted", "system"), ("transfer.settled", "operator")])
           + events_for(transfer_a2, [("transfer.submitted", "system")]), now=T0 + timedelta(seconds=2))
    append("BATCH-B", events_for(transfer_b, [("transfer.created", "clerk_b"), ("transfer.submitted", "system"),
                                              ("transfer.settled", "operator")]), now=T0 + timedelta(seconds=3))
    return World(
        org_a=org_a, org_b=org_b, operator=operator, wallet_a=wallet_a, wallet_b=wallet_b, staff_wallet=staff_wallet,
        transfer_a=transfer_a, transfer_a2=transfer_a2, transfer_b=transfer_b,
        user_a=_user("clerk_a", org=org_a, role=EMPLOYER_OPERATOR),
        user_b=_user("clerk_b", org=org_b, role=EMPLOYER_OPERATOR),
        auditor=_user("auditor", role=AUDITOR),
        admin=_user("admin", role=ADMIN),
        nobody=_user("nobody"),
    )
