"""Integration (PostgreSQL row locks): the same months paid twice at the same moment (a double click, two tabs)
are debited once; both requests get the same payment."""
import threading

import pytest
from django.db import connections

from social_security.flexible import services
from social_security.flexible.models import Payment, PaymentState
from tests.social_security.flexible.conftest import NOW
from treasury.models import Transfer
from treasury.services.ledger import check_ledger

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("needs_postgresql")]



def test_two_requests_paying_the_same_months_at_once_debit_once(flex):
    who = flex.individual(balance_fen=10_000_00)
    enrolment = flex.enrol(who)
    ids = list(enrolment.periods.order_by("month").values_list("pk", flat=True)[:2])
    start = threading.Barrier(2)
    payments, errors = [], []

    def pay():
        try:
            start.wait()
            payments.append(services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=ids, now=NOW))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=pay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len({p.pk for p in payments}) == 1
    assert Payment.objects.count() == 1 and Transfer.objects.count() == 1
    assert Payment.objects.get().state == PaymentState.PAID
    assert flex.balance(who.wallet_id) == 10_000_00 - (226200 + 2941) - 226200
    assert check_ledger().problems == []
