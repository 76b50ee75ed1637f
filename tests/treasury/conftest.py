"""A small world for transfer-core tests: an operator, an employer, wallets in our registry and at
the sandbox operator (over real HTTP)."""
from dataclasses import dataclass, field

import pytest
from django.utils import timezone

from demo.world import make_resident_id, make_uscc
from treasury.models import Organization, Person, Wallet
from treasury.services.transfers import NewTransfer, create_transfers
from treasury.services.wallets import register_wallet


@dataclass
class World:
    sandbox: object
    operator: Organization
    employer: Organization
    payer: Wallet
    payees: list = field(default_factory=list)
    serial: int = 0

    def pay(self, amounts, *, batch_ref="batch-1", payer=None, payees=None, key_prefix=None, conditions=None,
            purpose="SALARY", hold=False):
        """Create transfers payer -> payees[i] of amounts[i] (fen) and return their ids.

        Runs after-commit callbacks like a real commit would (Celery is eager in tests).
        """
        payer = payer or self.payer
        payees = payees or self.payees
        key_prefix = key_prefix or batch_ref
        items = [
            NewTransfer(payer_id=payer.pk, payee_id=payees[i % len(payees)].pk, amount_fen=amount,
                        idempotency_key=f"{key_prefix}:{i}", purpose_code=purpose, source_ref=f"{batch_ref} line {i + 1}",
                        conditions=conditions)
            for i, amount in enumerate(amounts)
        ]
        return create_transfers(organization_id=self.employer.pk, batch_ref=batch_ref, transfers=items,
                                actor="tester", now=timezone.now(), hold=hold)

    def operator_balance(self, wallet: Wallet) -> int:
        return self.sandbox.admin.balance(wallet_id=wallet.wallet_id)


def open_wallet(sandbox, *, operator, number, holder_org=None, holder_person=None, name, wallet_type, wallet_class=None,
                balance_fen=0):
    wallet = register_wallet(wallet_id=number, wallet_type=wallet_type, operator=operator, holder_org=holder_org,
                             holder_person=holder_person, holder_name=name, wallet_class=wallet_class)
    sandbox.admin.open_wallet(wallet_id=number, wallet_type=wallet_type, holder_name=name, wallet_class=wallet_class,
                              balance_fen=balance_fen)
    return wallet


@pytest.fixture
def world(db, ecny_sandbox):
    operator = Organization.objects.create(name="示范银行", org_type=Organization.Type.OPERATOR_BANK,
                                           uscc=make_uscc("91370100MA3C00001"), code="001")
    employer = Organization.objects.create(name="济南示范科技有限公司", org_type=Organization.Type.EMPLOYER,
                                           uscc=make_uscc("91370100MA3C00007"))
    payer = open_wallet(ecny_sandbox, operator=operator, number="0010000000000011", holder_org=employer,
                        name=employer.name, wallet_type=Wallet.Type.CORPORATE, balance_fen=100_000_000_00)
    payees = []
    for i in range(1, 6):
        person = Person.objects.create(name=f"员工{i}", resident_id=make_resident_id("370102", "19900101", i))
        payees.append(open_wallet(ecny_sandbox, operator=operator, number=f"00110000000000{i:02d}", holder_person=person,
                                  name=person.name, wallet_type=Wallet.Type.PERSONAL, wallet_class=2))
    return World(sandbox=ecny_sandbox, operator=operator, employer=employer, payer=payer, payees=payees)
