"""The dashboard's "Needs a person": a failed transfer leaves it when it is paid again, not when another payment
of the same document goes through."""
import pytest
from django.contrib.contenttypes.models import ContentType

from payroll.models import PayrollBatch
from tests import factories as f
from treasury.models import Organization


@pytest.mark.django_db
def test_a_failed_payment_stays_while_another_payment_of_its_document_settles(client):
    # A payroll run's union funds are two transfers of the run (grassroots union, higher union): the first one
    # failing and the second settling hid the failure, as if the second had been its retry.
    employer = f.make_organization(org_type=Organization.Type.EMPLOYER)
    user = f.make_user(role="employer_operator", organization=employer)
    payer = f.make_wallet(holder_org=employer)
    grassroots, higher = f.make_wallet(holder_org=f.make_organization()), f.make_wallet(holder_org=f.make_organization())
    run = {"source_type_id": ContentType.objects.get_for_model(PayrollBatch).pk, "source_id": 4242,
           "purpose_code": "UNFD"}
    f.make_transfer(payer=payer, payee=grassroots, state="failed", failure_message="wallet closed", **run)
    f.make_transfer(payer=payer, payee=higher, state="settled", **run)
    client.force_login(user)
    html = client.get("/").content.decode()
    assert 'data-testid="attention-count">1<' in html and "wallet closed" in html

    # Paid again to the same wallet: the retry dealt with it.
    f.make_transfer(payer=payer, payee=grassroots, state="settled", **run)
    assert 'data-testid="attention-count">0<' in client.get("/").content.decode()
