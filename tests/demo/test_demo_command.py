"""`make demo` is one of the README's two commands: the whole demo runs here, against its own sandboxes, and
ends with its proofs (ledger, trace, receipts). A change that breaks a step of it fails this test."""
import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db(transaction=True)
def test_the_demo_runs_end_to_end_and_proves_itself():
    from adapters.budget.client import get_budget_client
    from adapters.ecny.client import get_operator_client
    from adapters.tips import signing
    from adapters.tips.client import get_tips_client

    out = io.StringIO()
    try:
        call_command("demo", stdout=out)
    finally:  # the demo points the clients at its own sandboxes, stopped now
        for cached in (get_operator_client, get_budget_client, get_tips_client, signing.peer_public_key):
            cached.cache_clear()
    text = out.getvalue()
    assert "1. payroll file for" in text and "rejected" in text
    assert "39 lines paid" in text and "1 held" in text  # every line but the frozen wallet's
    assert "ledger OK" in text and "trace OK" in text and "verifies: True" in text
