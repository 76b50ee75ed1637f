"""The union page and API as the union's and the employer's users meet them: members (names, IDs and
wallets masked, as payroll lines are), rules as percentages, dues by month with payment state and receipt, arrears, the monthly
dues call (collected once, however often it is asked for), and scoping (anyone else gets 404).
Against the sandbox operator over real HTTP; Celery runs eagerly, so a call is paid in the request."""
import pytest
from django.urls import reverse
from django.utils import timezone

from payroll.forms import period_of, recent_periods
from payroll.models import DuesCall
from tests import factories as f
from tests.clients import assert_links_lead_to
from tests.payroll.helpers import staff
from tests.payroll.test_pages_api import api_as, logged_in, messages_of
from tests.payroll.test_union import members_for
from treasury.access import roles
from treasury.models import TransferState

pytestmark = pytest.mark.django_db(transaction=True)


def this_month() -> str:
    return period_of(timezone.localdate())


@pytest.fixture
def union_world(employer, grassroots):
    """Four members: three authorised (two with money in their wallets, one without), one not authorised."""
    rows = staff(employer, 4)
    members = members_for(grassroots, rows[:3]) + members_for(grassroots, rows[3:], authorised=False)
    for row in rows[:2]:
        employer.sandbox.admin.fund(wallet_id=row[3], amount_fen=100_00)
    union_user = f.make_user(role=roles.EMPLOYER_OPERATOR, organization=grassroots.union)
    return rows, members, union_user


def call_by_page(client, union, period):
    return client.post(reverse("payroll:union-dues-call", args=[union.pk]), {"period": period}, follow=True)


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------


def test_union_page_shows_members_rules_calls_and_arrears(employer, grassroots, union_world):
    rows, members, union_user = union_world
    page = logged_in(union_user)
    url = reverse("payroll:union-detail", args=[grassroots.pk])
    assert page.get(reverse("payroll:union-list")).url == url  # one union: straight to it

    html = page.get(url).content.decode()
    for member in members:
        assert f'data-member="{member.pk}"' in html
        assert member.name not in html and member.resident_id not in html and member.wallet_id not in html  # masked
    assert 'data-testid="dues-rate">0.5%' in html and 'data-testid="funds-rate">2%' in html
    assert "60%" in html and "40%" in html
    assert 'data-action="dues-call"' in html and f'value="{this_month()}"' in html
    arrears_html = html.split('data-testid="arrears"')[1]
    for member in members:  # nothing called yet: every active member owes this month
        assert f'data-arrear="{member.pk}-{this_month()}"' in arrears_html

    response = call_by_page(page, grassroots, this_month())
    assert any(f"已向 3 名会员收取 {this_month()} 会费" in m for m in messages_of(response)), messages_of(response)
    html = response.content.decode()
    assert f'data-period="{this_month()}"' in html
    calls = DuesCall.objects.filter(period=this_month()).select_related("transfer", "member")
    assert calls.count() == 3
    states = {c.member_id: c.transfer.state for c in calls}
    assert [states[m.pk] for m in members[:3]] == [TransferState.SETTLED, TransferState.SETTLED, TransferState.FAILED]
    for call in calls:
        assert f'data-call="{call.pk}" data-state="{call.transfer.state}"' in html
    settled = calls.get(member=members[0])
    assert reverse("receipts:download", args=[settled.transfer.receipt.number]) in html
    pdf = page.get(reverse("receipts:download", args=[settled.transfer.receipt.number]))
    assert pdf.status_code == 200 and b"".join(pdf.streaming_content)[:5] == b"%PDF-"

    arrears_html = html.split('data-testid="arrears"')[1]
    owed = {m.pk for m in members[2:]}  # the call that failed, and the member who gave no authorisation
    for member in members:
        assert (f'data-arrear="{member.pk}-{this_month()}"' in arrears_html) == (member.pk in owed), member.pk
    assert "扣款失败" in arrears_html and "未缴" in arrears_html


def test_a_second_call_by_page_collects_nothing(employer, grassroots, union_world):
    rows, members, union_user = union_world
    operator = logged_in(employer.operator_user)  # the employer's users call dues too
    call_by_page(operator, grassroots, this_month())
    balance = employer.sandbox.admin.balance(wallet_id=grassroots.wallet.wallet_id)
    assert balance > 0
    # Only the call that failed (an empty wallet) is tried again, and fails again; nobody pays twice.
    response = call_by_page(logged_in(union_user), grassroots, this_month())
    assert any(f"已向 1 名会员收取 {this_month()} 会费" in m for m in messages_of(response)), messages_of(response)
    assert DuesCall.objects.count() == 3 and DuesCall.objects.get(member=members[2]).attempts == 2
    assert employer.sandbox.admin.balance(wallet_id=grassroots.wallet.wallet_id) == balance


def test_dues_call_form_refuses_a_bad_or_future_month(employer, grassroots, union_world):
    page = logged_in(union_world[2])
    for period in ("2025-13", "July", "2999-01"):
        response = page.post(reverse("payroll:union-dues-call", args=[grassroots.pk]), {"period": period})
        assert response.status_code == 400 and response.context["form"].errors["period"], period
    assert DuesCall.objects.count() == 0
    # The page shown again lives at the union's own address: its links and the language switch lead there,
    # not to the dues call's, which only takes a POST (a GET there was a blank 405).
    union_url = reverse("payroll:union-detail", args=[grassroots.pk])
    assert_links_lead_to(page, response, union_url)


def test_employer_users_see_no_receipt_link_they_could_not_open(employer, grassroots, union_world):
    """A monthly call is the union's payment: its receipt is the union's, so the employer's page shows none."""
    call_by_page(logged_in(union_world[2]), grassroots, this_month())
    html = logged_in(employer.approver).get(reverse("payroll:union-detail", args=[grassroots.pk])).content.decode()
    assert 'data-call="' in html and 'data-testid="receipt-link"' not in html


# ---------------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------------


def test_dues_call_by_api_collects_once(employer, grassroots, union_world):
    rows, members, union_user = union_world
    api = api_as(employer.approver)
    url = f"/api/v1/payroll/unions/{grassroots.pk}"
    first = api.post(f"{url}/dues-calls/", {"period": this_month()}, format="json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["created"] == 3 and len(body["calls"]) == 3
    assert body["amount_fen"] == sum(c.amount_fen for c in DuesCall.objects.all())
    assert {c["state"] for c in body["calls"]} == {"settled", "failed"}
    again = api.post(f"{url}/dues-calls/", {"period": this_month()}, format="json")
    # The failed call (an empty wallet) is tried again; the paid ones are not.
    assert again.status_code == 201 and again.json()["created"] == 1
    assert [(c["member_id"], c["state"]) for c in again.json()["calls"]] == [(members[2].pk, "failed")]
    assert DuesCall.objects.count() == 3

    listed = api.get("/api/v1/payroll/unions/").json()
    assert [u["id"] for u in listed["results"]] == [grassroots.pk]
    detail = api.get(f"{url}/").json()
    assert (detail["dues_rate_percent"], detail["funds_rate_percent"], detail["grassroots_share_percent"]) == (
        "0.5", "2", "60")
    assert len(detail["members"]) == 4
    assert all("*" in m["name"] and "*" in m["resident_id"] and "*" in m["wallet_id"] for m in detail["members"])
    assert all("*" in c["name"] for c in detail["calls"])
    assert {m["resident_id"] for m in detail["members"]}.isdisjoint({r[2] for r in rows})
    assert len(detail["calls"]) == 3
    paid = next(c for c in detail["calls"] if c["state"] == "settled")
    assert paid["receipt_number"]
    assert api.get(f"{url}/", {"periods": "2001-01"}).json()["calls"] == []

    arrears = api.get(f"{url}/arrears/", {"periods": this_month()}).json()
    assert sorted(a["member_id"] for a in arrears) == sorted(m.pk for m in members[2:])
    assert {a["name"] for a in arrears}.isdisjoint({m.name for m in members})  # masked
    default = api.get(f"{url}/arrears/").json()  # this month and the two before
    assert {a["period"] for a in default} == set(recent_periods(timezone.localdate(), 3))
    assert api.get(f"{url}/arrears/", {"periods": "2025-13"}).status_code == 400

    for period in ("2999-01", "nonsense"):
        response = api.post(f"{url}/dues-calls/", {"period": period}, format="json")
        assert response.status_code == 400, period
    assert api.post(f"{url}/dues-calls/", {}, format="json").json()["code"] == "invalid"


# ---------------------------------------------------------------------------------------------
# Who sees what
# ---------------------------------------------------------------------------------------------


def test_another_employer_and_other_roles_get_404(employer, grassroots, union_world):
    other = f.make_organization(name="另一家单位")
    detail = reverse("payroll:union-detail", args=[grassroots.pk])
    call = reverse("payroll:union-dues-call", args=[grassroots.pk])
    api_url = f"/api/v1/payroll/unions/{grassroots.pk}"
    for role in (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER):
        outsider = f.make_user(role=role, organization=other)
        page = logged_in(outsider)
        assert page.get(detail).status_code == 404
        assert page.post(call, {"period": this_month()}).status_code == 404
        listed = page.get(reverse("payroll:union-list"))
        assert listed.status_code == 200 and f'data-union="{grassroots.pk}"' not in listed.content.decode()
        api = api_as(outsider)
        for suffix in ("/", "/arrears/"):
            response = api.get(api_url + suffix)
            assert response.status_code == 404 and response.json()["code"] == "not_found", suffix
        assert api.post(f"{api_url}/dues-calls/", {"period": this_month()}, format="json").status_code == 404
        assert api.get("/api/v1/payroll/unions/").json()["count"] == 0
    clerk = f.make_user(role=roles.FINANCE_CLERK)
    assert logged_in(clerk).get(reverse("payroll:union-list")).status_code == 404
    assert logged_in(clerk).get(detail).status_code == 404
    assert api_as(clerk).get(api_url + "/").status_code == 404
    # A user of the union's organization without an employer role sees nothing either.
    assert logged_in(f.make_user(role=roles.TAX_STAFF, organization=grassroots.union)).get(detail).status_code == 404
    assert DuesCall.objects.count() == 0


@pytest.mark.parametrize("role", [roles.AUDITOR, roles.ADMIN])
def test_auditors_and_admins_read_and_call_nothing(employer, grassroots, union_world, role):
    reader = f.make_user(role=role)
    page = logged_in(reader)
    listed = page.get(reverse("payroll:union-list"))
    assert listed.status_code == 200 and f'data-union="{grassroots.pk}"' in listed.content.decode()
    html = page.get(reverse("payroll:union-detail", args=[grassroots.pk])).content.decode()
    assert 'data-testid="members"' in html and 'data-action="dues-call"' not in html
    assert page.post(reverse("payroll:union-dues-call", args=[grassroots.pk]), {"period": this_month()}).status_code == 403
    api = api_as(reader)
    assert api.get(f"/api/v1/payroll/unions/{grassroots.pk}/").status_code == 200
    response = api.post(f"/api/v1/payroll/unions/{grassroots.pk}/dues-calls/", {"period": this_month()}, format="json")
    assert response.status_code == 403
    assert DuesCall.objects.count() == 0


def test_the_union_entry_is_in_the_navigation(employer, grassroots, union_world):
    html = logged_in(employer.operator_user).get(reverse("payroll:batch-list")).content.decode()
    assert 'data-nav="payroll_unions"' in html and reverse("payroll:union-list") in html
