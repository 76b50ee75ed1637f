"""The transfer pages and API as a person reads them: another person's wallet ids never whole, and a day out of
range a field error rather than a server error. (The pages' and the API's other behaviour: tests/access/test_pages.py
and tests/api/test_api.py.)"""
import json

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from tests import factories as f
from tests.clients import api_as, logged_in
from treasury.access import roles
from treasury.access.models import PersonalAccount
from treasury.identifiers import mask_wallet_id

pytestmark = pytest.mark.django_db


def test_the_conditions_show_no_other_payees_wallet_id_whole():
    """An earmarked payment's smart-contract conditions list the allowed payees' wallet ids: the transfer page
    counts them, the trace masks them, and so does the API, to a person paid by such a transfer too."""
    me = f.make_person(name="李四")
    others = [f.make_wallet(holder_person=f.make_person(name=f"王{i}")) for i in range(3)]
    mine = f.make_wallet(holder_person=me)
    allowed = [w.wallet_id for w in others] + [mine.wallet_id]
    transfer = f.make_transfer(state="settled", payee=mine, conditions={
        "allowed_payees": allowed, "payee_category": "WT01", "purposes": ["SUBSIDY"], "expires_at": None})
    user = f.make_user()  # no organization: a person acting for themselves
    user.groups.add(Group.objects.get_or_create(name=roles.INDIVIDUAL)[0])
    PersonalAccount.objects.create(user=user, person=me)

    page = logged_in(user).get(reverse("transfer-detail", args=[transfer.pk]))
    assert page.status_code == 200
    assert all(w.wallet_id not in page.content.decode() for w in others)

    response = api_as(user).get(f"/api/v1/transfers/{transfer.pk}/")
    assert response.status_code == 200
    conditions = response.json()["conditions"]
    assert conditions["allowed_payees"] == [mask_wallet_id(w) for w in allowed]
    assert (conditions["payee_category"], conditions["purposes"]) == ("WT01", ["SUBSIDY"])
    body = json.dumps(response.json())
    assert [w.wallet_id for w in others if w.wallet_id in body] == []


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_a_day_out_of_range_is_a_field_error_not_a_server_error(day):
    """9999-12-31 has no next midnight and 0001-01-01 no start in UTC: the day's bounds overflowed (500). The
    dashboard shows today instead, the list says what is wrong with the field, the API answers 400."""
    user = f.make_user(role=roles.EMPLOYER_OPERATOR)
    client = logged_in(user, raise_request_exception=False)

    dashboard = client.get("/", {"day": day})
    assert dashboard.status_code == 200 and dashboard.context["is_today"]
    listed = client.get("/transfers/", {"created_date": day})
    assert listed.status_code == 200 and "created_date" in listed.context["form"].errors

    api = api_as(user)
    api.raise_request_exception = False
    answer = api.get("/api/v1/transfers/", {"created_date": day})
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid" and "created_date" in answer.json()["details"]
