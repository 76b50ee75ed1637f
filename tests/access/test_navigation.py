import re

import pytest
from django.contrib.auth.models import Group

from tests import factories as f
from treasury.access import navigation
from treasury.access.navigation import NavEntry

COMMON = {"dashboard", "transfers", "trace", "receipt_verify"}
FISCAL = {"fiscal_quotas", "fiscal_requests", "fiscal_returns", "fiscal_daily_report"}
FISCAL_APPROVALS = {"fiscal_approvals"}
TAX_READ = {"tax_agreements", "tax_deductions", "tax_packages", "tax_entry_report",
            "tax_reconciliation"}  # auditors read these
TAX_READ |= {"tax_refunds", "tax_reversals"}  # 退库 (refunds): tax staff act, auditors read; 冲正与止付: read
TAX = TAX_READ | {"tax_own"}
PAYROLL = {"payroll_batches", "payroll_upload", "payroll_unions"}
AUDIT = {"ledger", "trace_verify"}
BUDGET = {"budget_messages"}  # the budget system's message log
TIPS = {"tips_messages"}  # the TIPS message log
SOCIAL_STAFF = {"social_flexible_enrolments"}  # flexible-employment enrolments: tax staff act, auditors read
SOCIAL_STAFF |= {"social_declarations"}  # employers' declarations: tax staff and auditors read
SOCIAL_STAFF |= {"social_reconciliation"}  # premium reconciliation: tax staff act, auditors read
SOCIAL_EMPLOYER = {"social_declarations"}  # employers prepare, declare and pay their own

EXPECTED = {
    "finance_clerk": COMMON | FISCAL | BUDGET,
    "finance_approver": COMMON | FISCAL | FISCAL_APPROVALS | BUDGET,
    "tax_staff": COMMON | TAX | TIPS | SOCIAL_STAFF,
    "employer_operator": COMMON | PAYROLL | SOCIAL_EMPLOYER,
    "employer_approver": COMMON | PAYROLL - {"payroll_upload"} | SOCIAL_EMPLOYER,  # approves what operators upload
    "auditor": COMMON | FISCAL | FISCAL_APPROVALS | AUDIT | {"payroll_unions"} | BUDGET | TIPS | TAX_READ
    | SOCIAL_STAFF,
    "admin": COMMON | FISCAL | FISCAL_APPROVALS | TAX | PAYROLL | AUDIT | {"reference_data"} | BUDGET | TIPS
    | SOCIAL_STAFF,
}


def _user(role: str):
    # Administrators are staff users too: Django's admin site (reference data) lets in staff only.
    return f.make_user(role=role, is_staff=role == "admin")


def test_reference_data_is_not_offered_to_an_administrator_the_admin_site_would_refuse(db):
    user = f.make_user(role="admin")  # not a staff user
    assert "reference_data" not in {link.key for link in navigation.nav_links(user)}


def _nav_keys(html: str) -> set[str]:
    nav = re.search(r'<nav class="sidenav".*?</nav>', html, re.S).group(0)
    return set(re.findall(r'data-nav="([^"]+)"', nav))


@pytest.mark.django_db
@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_each_role_sees_its_navigation(client, role):
    client.force_login(_user(role))
    response = client.get("/")
    assert response.status_code == 200
    assert _nav_keys(response.content.decode()) == EXPECTED[role]


@pytest.mark.django_db
def test_an_individual_sees_the_common_pages_and_their_own_premiums_and_taxes(client):
    """A person logged in as themselves (no organization; not in EXPECTED, whose roles all have one)."""
    from treasury.access.models import PersonalAccount

    user = f.make_user(role=None)
    user.groups.add(Group.objects.get(name="individual"))
    PersonalAccount.objects.create(user=user, person=f.make_person())
    client.force_login(user)
    assert _nav_keys(client.get("/").content.decode()) == COMMON | {"social_flexible_mine", "tax_mine"}


@pytest.mark.django_db
def test_a_user_with_two_roles_sees_both(client):
    user = f.make_user(role="finance_clerk")
    user.groups.add(Group.objects.get(name="tax_staff"))
    client.force_login(user)
    assert _nav_keys(client.get("/").content.decode()) == COMMON | FISCAL | TAX | BUDGET | TIPS | SOCIAL_STAFF


@pytest.mark.django_db
def test_anonymous_visitor_is_sent_to_login_and_sees_no_navigation(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    login_page = client.get("/login/").content.decode()
    assert 'class="sidenav"' not in login_page and "data-nav=" not in login_page


@pytest.mark.django_db
def test_every_entry_leads_to_its_page(client):
    """No entry of the menu is a promise: each one's page answers the roles it is shown to."""
    from treasury.access.models import PersonalAccount

    for entry in navigation.ENTRIES:
        user = f.make_user(role=(entry.roles or ("auditor",))[0])
        user.is_staff = entry.staff_only
        user.save()
        if entry.roles == navigation.INDIVIDUAL:  # an individual's pages are their own: a person behind the user
            PersonalAccount.objects.create(user=user, person=f.make_person())
        client.force_login(user)
        url = navigation._resolve(entry)
        assert client.get(url).status_code == 200, (entry.key, url)


@pytest.mark.django_db
def test_entries_by_url_name_and_the_roles_they_are_shown_to(monkeypatch):
    monkeypatch.setattr(navigation, "ENTRIES", [
        NavEntry("here", "Here", "S", url_name="dashboard"),
        NavEntry("verify", "Verify", "S", url_name="receipts:verify"),
        NavEntry("finance_only", "Finance", "S", roles=("finance_clerk",), url_name="dashboard"),
    ])
    links = {link.key: link for link in navigation.nav_links(f.make_user(role="tax_staff"), current_path="/")}
    assert set(links) == {"here", "verify"}
    assert links["here"].url == "/" and links["here"].active
    assert links["verify"].url == "/receipts/verify/" and not links["verify"].active


@pytest.mark.django_db
def test_current_page_is_marked_active(client):
    client.force_login(f.make_user(role="tax_staff"))
    html = client.get("/transfers/").content.decode()
    assert re.search(r'data-nav="transfers" class="active"', html)
    assert not re.search(r'data-nav="dashboard" class="active"', html)


@pytest.mark.django_db
def test_the_reconciliation_entry_links_to_the_runs_page():
    links = {link.key: link for link in navigation.nav_links(f.make_user(role="tax_staff"),
                                                             current_path="/tax/reconciliation/cases/")}
    entry = links["tax_reconciliation"]
    assert entry.url == "/tax/reconciliation/" and entry.active


@pytest.mark.django_db
def test_only_the_most_specific_entry_is_active():
    # The agreements' page is /tax/, a prefix of every tax page: on the deductions page only their entry is.
    user = f.make_user(role="tax_staff")
    for path, key in [("/tax/deductions/12/", "tax_deductions"), ("/tax/agreements/3/", "tax_agreements"),
                      ("/tax/reconciliation/cases/", "tax_reconciliation")]:
        active = [link.key for link in navigation.nav_links(user, current_path=path) if link.active]
        assert active == [key], (path, active)


@pytest.mark.django_db
@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_every_entry_a_role_sees_opens_for_it(client, role):
    # No link to a page that answers 403: the navigation and the views' role checks agree.
    user = _user(role)
    client.force_login(user)
    for link in navigation.nav_links(user):
        if link.url:
            assert client.get(link.url).status_code == 200, (role, link.key, link.url)
