"""Premium discrepancy cases through the API as an outsider meets them: the proposer of a correction cannot
approve it (maker-checker), another tax authority's staff and an employer get 404 for the case and its
correction (not 403: nothing says it exists), an auditor reads and cannot act. The services are tested in
test_reconciliation; this is the same through /api/v1/social/reconciliation/."""
from social_security import reconciliation
from social_security.models import SocialDiscrepancyCase
from tests import factories as f
from tests.clients import api_as
from tests.social_security.test_reconciliation import day, now  # noqa: F401 (the fixture)
from treasury.access import roles
from treasury.models import Transfer

API = "/api/v1/social/reconciliation/cases"


def test_maker_checker_and_scoping_hold_through_the_api(day):  # noqa: F811
    rows = day.statement()
    rows.append((day.flex_key, "credit", day.payment.amount_fen, "transfer", day.fund))  # collected twice
    reconciliation.reconcile_day(check_date=day.date, now=now(), statement_rows=rows)
    case = SocialDiscrepancyCase.objects.get(outcome="duplicate_operator")
    staff, checker = day.world.tax_staff, f.make_user(role=roles.TAX_STAFF, organization=day.world.authority)
    maker = api_as(staff)
    proposed = maker.post(f"{API}/{case.pk}/corrections/", {"kind": "refund", "amount_fen": day.payment.amount_fen,
                                                            "reason": "退还重复扣款"}, format="json")
    assert proposed.status_code == 200, proposed.content
    correction = case.corrections.get()
    approve = f"{API}/{case.pk}/corrections/{correction.pk}/approve/"

    own = maker.post(approve, format="json")
    assert (own.status_code, own.json()["code"]) == (403, "maker_checker")
    for outsider in (day.world.other_tax_staff, f.make_user(role=roles.EMPLOYER_APPROVER, organization=day.world.employer)):
        api = api_as(outsider)
        for method, url in (("get", f"{API}/{case.pk}/"), ("post", approve),
                            ("post", f"{API}/{case.pk}/corrections/{correction.pk}/reject/"),
                            ("post", f"{API}/{case.pk}/resolve/")):
            response = getattr(api, method)(url, {"reason": "x"}, format="json")
            assert response.status_code in (403, 404), (outsider, url, response.status_code)
            if roles.has_role(outsider, roles.TAX_STAFF):  # the role may use the API: the case itself is a 404
                assert response.status_code == 404 and response.json()["code"] == "not_found", url
    auditor = api_as(f.make_user(role=roles.AUDITOR))
    assert auditor.get(f"{API}/{case.pk}/").status_code == 200
    assert auditor.post(approve, format="json").json()["code"] == "read_only_role"
    assert not Transfer.objects.filter(idempotency_key=f"socialcorr:{correction.pk}").exists()

    approved = api_as(checker).post(approve, format="json")
    assert approved.status_code == 200, approved.content
    assert Transfer.objects.filter(idempotency_key=f"socialcorr:{correction.pk}").exists()
