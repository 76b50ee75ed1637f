"""The ledger invariant under random sequences of payments, faults, recoveries, reversals and returns.

Whatever happens, afterwards: every posting balances, every balance equals its entries, and our
ledger agrees with the operator's balances to the fen (no transfer executed twice, none lost).
"""
import itertools

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from adapters.ecny.client import get_operator_client
from treasury.models import LedgerAccount, Transfer, TransferState
from treasury.services import transfers as transfer_services
from treasury.services.ledger import check_ledger

pytestmark = pytest.mark.django_db(transaction=True)

FAULTS = [None, "timeout_after_apply", "error_before_apply", "error_after_apply", "malformed_reply", "duplicate_reply"]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.lists(st.integers(1, 5_000_00), min_size=1, max_size=6), st.sampled_from(FAULTS)),
        st.tuples(st.just("recover"), st.just(None), st.just(None)),
        st.tuples(st.just("reverse"), st.integers(0, 50), st.just(None)),
        st.tuples(st.just("return"), st.integers(0, 50), st.just(None)),
    ),
    min_size=1,
    max_size=8,
)


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_ledger_invariant_under_random_sequences(world, settings, ops):
    settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 0.5
    get_operator_client.cache_clear()
    counter = itertools.count()
    example = Transfer.objects.count()  # keys unique across examples
    payer_start = world.operator_balance(world.payer) - _ledger(world.payer)  # ledger = -(net paid out)
    for op, arg, fault in ops:
        if op == "pay":
            world.sandbox.admin.clear_faults()
            if fault == "timeout_after_apply":
                world.sandbox.admin.set_fault(fault, count=1, sleep_seconds=1)
            elif fault:
                world.sandbox.admin.set_fault(fault, count=1)
            world.pay(arg, batch_ref=f"ex{example}-{next(counter)}")
        elif op == "recover":
            world.sandbox.admin.clear_faults()
            transfer_services.recover_unconfirmed_transfers(now=timezone.now())
        else:
            settled = list(Transfer.objects.filter(state=TransferState.SETTLED).order_by("pk"))
            if settled:
                chosen = settled[arg % len(settled)]
                world.sandbox.admin.clear_faults()
                if op == "reverse":
                    transfer_services.reverse_transfer(transfer_id=chosen.pk, reason="test", actor="t", now=timezone.now())
                else:
                    world.sandbox.admin.return_transfer(request_id=chosen.idempotency_key, reason="test")
                    transfer_services.refresh_transfers(transfer_ids=[chosen.pk], now=timezone.now())
    # Settle every open question the way production does: recovery, later.
    world.sandbox.admin.clear_faults()
    later = timezone.now() + timezone.timedelta(minutes=10)
    for _ in range(3):
        transfer_services.recover_unconfirmed_transfers(now=later)
    assert not Transfer.objects.filter(state__in=[TransferState.UNKNOWN, TransferState.SUBMITTED,
                                                  TransferState.PENDING]).exists()
    assert check_ledger().problems == []
    for payee in world.payees:
        assert _ledger(payee) == world.operator_balance(payee)
    assert payer_start - world.operator_balance(world.payer) == -_ledger(world.payer)


def _ledger(wallet):
    return LedgerAccount.objects.get(wallet=wallet).balance_fen
