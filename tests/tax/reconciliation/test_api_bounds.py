"""Resolving a case through the API with a correcting transfer id out of the database's range is refused as
invalid (400; it was a server error) and leaves the case open."""

from tax.reconciliation.models import CaseState, DiscrepancyCase, Outcome
from tests.clients import api_as
from tests.tax.reconciliation.test_pages_api import API, run  # noqa: F401 (the fixture)

HUGE = 18449125068513158400383969


def test_a_correcting_transfer_id_out_of_range_is_refused_and_the_case_stays_open(run, tax):  # noqa: F811
    case = DiscrepancyCase.objects.get(outcome=Outcome.AMOUNT_MISMATCH)
    api = api_as(tax.staff)
    for transfer in (HUGE, 2**63, 0):
        response = api.post(f"{API}/cases/{case.pk}/resolve/", {"reason": "corrected", "correcting_transfer": transfer},
                            format="json")
        assert response.status_code == 400, (transfer, response.content[:300])
        assert "correcting_transfer" in response.json()["details"]
    case.refresh_from_db()
    assert case.state == CaseState.OPEN and case.resolved_by == ""
