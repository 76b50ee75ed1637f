"""Receipt fixtures: parties, wallets and settled transfers made with the ORM, files in tmp_path."""
from datetime import datetime, timedelta, timezone

import pytest

from treasury import keys
from treasury.models import LedgerAccount, LedgerEntry, Organization, Person, Transfer, TransferState, Wallet

NOW = datetime(2025, 3, 14, 2, 30, tzinfo=timezone.utc)  # 10:30 in Shanghai


@pytest.fixture(autouse=True)
def receipt_storage(settings, tmp_path):
    """Receipts and the signing key live in tmp_path, never in the repository's var/."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SERVICE_SIGNING_KEY_FILE = tmp_path / "keys" / "service-ed25519.pem"
    settings.SERVICE_SIGNING_KEY_CREATE = True
    settings.PUBLIC_BASE_URL = "https://pay.example.gov.cn"
    keys.service_private_key.cache_clear()
    yield settings.MEDIA_ROOT
    keys.service_private_key.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_check_counts():
    """The public check counts requests per address (60 a minute) in the cache: each test starts from none, so
    that the many checks of one test file do not refuse another's."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def now():
    return NOW


class World:
    def __init__(self):
        self.operator = Organization.objects.create(
            name="中国某某银行", org_type=Organization.Type.OPERATOR_BANK, uscc="91310115591693856A", code="002"
        )
        self.employer = Organization.objects.create(
            name="某某市第一中学", org_type=Organization.Type.EMPLOYER, uscc="91350100M000100Y43"
        )
        self.other_org = Organization.objects.create(
            name="某某市第二中学", org_type=Organization.Type.EMPLOYER, uscc="91310110666007217T"
        )
        self.person = Person.objects.create(name="张晓三", resident_id="11010519491231002X")
        self.person2 = Person.objects.create(name="李四", resident_id="440524188001015368")
        self.payer = self.wallet("0021000000000001", org=self.employer)
        self.payee = self.wallet("0021000000000002", person=self.person)
        self.payee2 = self.wallet("0021000000000003", person=self.person2)
        self.other_payer = self.wallet("0021000000000009", org=self.other_org)
        self._seq = 0

    def wallet(self, wallet_id, *, org=None, person=None):
        wallet = Wallet.objects.create(
            wallet_id=wallet_id,
            wallet_type=Wallet.Type.CORPORATE if org else Wallet.Type.PERSONAL,
            wallet_class=None if org else 2,
            operator=self.operator,
            holder_org=org,
            holder_person=person,
            holder_name=org.name if org else person.name,
        )
        LedgerAccount.objects.create(
            code=f"W{wallet_id}", name=wallet.holder_name, kind=LedgerAccount.Kind.WALLET, wallet=wallet,
            organization=org,
        )
        return wallet

    def transfer(self, *, amount_fen=1234567, payer=None, payee=None, state=TransferState.SETTLED,
                 batch_ref="PAY-2025-03", organization=None, post=True):
        self._seq += 1
        payer = payer or self.payer
        payee = payee or self.payee
        settled_at = NOW - timedelta(minutes=5) if state != TransferState.PENDING else None
        transfer = Transfer.objects.create(
            idempotency_key=f"payroll:{batch_ref}:{self._seq}",
            payer=payer,
            payee=payee,
            amount_fen=amount_fen,
            purpose_code="SALA",
            memo="三月工资",
            source_ref=f"{batch_ref}/line-{self._seq}",
            organization=organization or payer.holder_org or self.employer,
            batch_ref=batch_ref,
            state=state,
            operator_txn_id=f"OP20250314{self._seq:06d}" if settled_at else "",
            created_by="clerk",
            created_at=NOW - timedelta(minutes=10),
            submitted_at=NOW - timedelta(minutes=9),
            settled_at=settled_at,
        )
        if post and state in (TransferState.SETTLED, TransferState.RETURNED, TransferState.REVERSED):
            LedgerEntry.objects.bulk_create([
                LedgerEntry(transfer=transfer, account=payer.ledger_account, kind=LedgerEntry.Kind.SETTLEMENT,
                            amount_fen=-amount_fen, posted_at=settled_at),
                LedgerEntry(transfer=transfer, account=payee.ledger_account, kind=LedgerEntry.Kind.SETTLEMENT,
                            amount_fen=amount_fen, posted_at=settled_at),
            ])
        return transfer


@pytest.fixture
def world(db):
    return World()
