"""The Transfer state machine: legal moves, illegal moves, protected state, concurrent moves."""
import pytest
from django.db import transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from demo.world import make_uscc
from treasury.models import Organization, Transfer, TransferState, Wallet
from treasury.services.wallets import register_wallet

S = TransferState


@pytest.fixture
def transfer(db):
    operator = Organization.objects.create(name="op", org_type=Organization.Type.OPERATOR_BANK,
                                           uscc=make_uscc("91370100MA3C00001"))
    org = Organization.objects.create(name="e", org_type=Organization.Type.EMPLOYER, uscc=make_uscc("91370100MA3C00007"))
    a = register_wallet(wallet_id="0010000000000001", wallet_type=Wallet.Type.CORPORATE, operator=operator,
                        holder_org=org, holder_name="e")
    b = register_wallet(wallet_id="0010000000000002", wallet_type=Wallet.Type.CORPORATE, operator=operator,
                        holder_org=operator, holder_name="op")
    return Transfer.objects.create(idempotency_key="k", payer=a, payee=b, amount_fen=100, organization=org,
                                   batch_ref="b", created_at=timezone.now())


LEGAL = [
    (S.PENDING, "submit", S.SUBMITTED), (S.PENDING, "cancel", S.CANCELLED),
    (S.SUBMITTED, "settle", S.SETTLED), (S.SUBMITTED, "fail", S.FAILED), (S.SUBMITTED, "mark_unknown", S.UNKNOWN),
    (S.SUBMITTED, "requeue", S.PENDING), (S.UNKNOWN, "settle", S.SETTLED), (S.UNKNOWN, "fail", S.FAILED),
    (S.UNKNOWN, "requeue", S.PENDING), (S.SETTLED, "mark_returned", S.RETURNED), (S.SETTLED, "mark_reversed", S.REVERSED),
]
METHODS = sorted({m for _, m, _ in LEGAL})


@pytest.mark.parametrize("source,method,target", LEGAL)
def test_legal_transitions(transfer, source, method, target):
    Transfer.objects.filter(pk=transfer.pk).update(state=source)
    transfer.refresh_from_db()
    getattr(transfer, method)()
    transfer.save()
    transfer.refresh_from_db()
    assert transfer.state == target


ILLEGAL = [(s, m) for s in S.values for m in METHODS if (s, m) not in {(ls, lm) for ls, lm, _ in LEGAL}]


@pytest.mark.parametrize("source,method", ILLEGAL)
def test_every_other_transition_is_illegal(transfer, source, method):
    Transfer.objects.filter(pk=transfer.pk).update(state=source)
    transfer.refresh_from_db()
    with pytest.raises(TransitionNotAllowed):
        getattr(transfer, method)()


def test_unknown_never_resolves_without_the_operator(transfer):
    """From unknown the only ways out are the operator's answers (settle, fail, requeue)."""
    assert Transfer.sources_of(Transfer.cancel) == [S.PENDING]
    assert S.UNKNOWN not in Transfer.sources_of(Transfer.cancel)
    assert Transfer.sources_of(Transfer.settle) == sorted([S.SUBMITTED, S.UNKNOWN])


def test_state_cannot_be_assigned(transfer):
    with pytest.raises(AttributeError):
        transfer.state = S.SETTLED


def test_concurrent_transitions_are_rejected(transfer):
    first = Transfer.objects.get(pk=transfer.pk)
    second = Transfer.objects.get(pk=transfer.pk)
    first.submit()
    first.save()
    second.cancel()
    with pytest.raises(ConcurrentTransition), transaction.atomic():
        second.save()
    assert Transfer.objects.get(pk=transfer.pk).state == S.SUBMITTED
