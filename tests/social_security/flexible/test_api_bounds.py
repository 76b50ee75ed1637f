"""Paying or pricing months through the API: a month id out of the database's range, or a list longer than any
arrears, is refused as invalid (400; an id past 2**63 was a server error) and pays nothing."""
from social_security.flexible.api import MAX_PERIODS
from social_security.flexible.models import Payment

HUGE = 18449125068513158400383969


def test_month_ids_out_of_range_or_too_many_are_refused(client, flex):
    who = flex.individual(balance_fen=10_000_00)
    enrolment = flex.enrol(who)
    first = enrolment.periods.order_by("month").first()
    client.force_login(who.user)
    for action in ("pay", "quote"):
        url = f"/api/v1/social/flexible/enrolments/{enrolment.pk}/{action}/"
        for ids in ([HUGE], [first.pk, 2**63], [0], list(range(1, MAX_PERIODS + 2))):
            response = client.post(url, {"period_ids": ids}, content_type="application/json")
            assert response.status_code == 400, (action, ids[:3], response.content[:300])
            assert "period_ids" in response.json()["details"]
    assert not Payment.objects.exists()
