"""The navigation, in one place: who sees which entry.

A domain adds its pages by adding an entry here with the `url_name` of its page; every entry's page exists
(tests/access/test_navigation.py resolves each).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from . import roles as R
from .roles import user_roles

EVERYONE = None


@dataclass(frozen=True)
class NavEntry:
    key: str
    label: str | Promise
    section: str | Promise
    roles: tuple[str, ...] | None = EVERYONE  # None: every signed-in user
    url_name: str = field(kw_only=True)  # resolved at request time
    staff_only: bool = False  # Django's admin site, which lets in staff users only


@dataclass(frozen=True)
class NavLink:
    key: str
    label: str
    section: str
    url: str
    active: bool


SECTION_OVERVIEW = _("Overview")
SECTION_FISCAL = _("Fiscal disbursement")
SECTION_TAX = _("Tax")
SECTION_PAYROLL = _("Payroll")
SECTION_SOCIAL = _("Social insurance")
SECTION_AUDIT = _("Audit")
SECTION_VERIFY = _("Verification")
SECTION_SYSTEM = _("System")

FINANCE = (R.FINANCE_CLERK, R.FINANCE_APPROVER, R.ADMIN)
TAX = (R.TAX_STAFF, R.ADMIN)
EMPLOYER = (R.EMPLOYER_OPERATOR, R.EMPLOYER_APPROVER, R.ADMIN)
AUDIT = (R.AUDITOR, R.ADMIN)
INDIVIDUAL = (R.INDIVIDUAL,)

ENTRIES: list[NavEntry] = [
    NavEntry("dashboard", _("Dashboard"), SECTION_OVERVIEW, url_name="dashboard"),
    NavEntry("transfers", _("Transfers"), SECTION_OVERVIEW, url_name="transfer-list"),
    NavEntry("trace", _("Trace"), SECTION_OVERVIEW, url_name="trace:search"),
    # Auditors read every bureau's quotas, requests and reports; they change nothing.
    NavEntry("fiscal_quotas", _("Budget quotas"), SECTION_FISCAL, FINANCE + (R.AUDITOR,), url_name="fiscal:quota_list"),
    NavEntry("fiscal_requests", _("Payment requests"), SECTION_FISCAL, FINANCE + (R.AUDITOR,), url_name="fiscal:request_list"),
    NavEntry("fiscal_approvals", _("Approval queue"), SECTION_FISCAL, (R.FINANCE_APPROVER, R.AUDITOR, R.ADMIN),
             url_name="fiscal:approval_queue"),
    NavEntry("fiscal_returns", _("Returns to handle"), SECTION_FISCAL, FINANCE + (R.AUDITOR,), url_name="fiscal:returns"),
    NavEntry("fiscal_daily_report", _("Daily report"), SECTION_FISCAL, FINANCE + (R.AUDITOR,),
             url_name="fiscal:daily_report"),
    # Auditors read every tax authority's agreements, deductions, packages and entries; they change nothing.
    NavEntry("tax_agreements", _("Three-party agreements"), SECTION_TAX, TAX + (R.AUDITOR,),
             url_name="tax:agreement-list"),
    NavEntry("tax_deductions", _("Deductions"), SECTION_TAX, TAX + (R.AUDITOR,),
             url_name="tax:deduction-list"),
    NavEntry("tax_packages", _("Batch packages"), SECTION_TAX, TAX + (R.AUDITOR,),
             url_name="tax:package-list"),
    # The tax system's reversal (1021) and stop-payment (1123) requests and how they were answered.
    NavEntry("tax_reversals", _("Reversals and stop payments"), SECTION_TAX, TAX + (R.AUDITOR,),
             url_name="tax:reversal-list"),
    # Refunds from the treasury (退库): tax staff review and approve them (two people); auditors read them.
    NavEntry("tax_refunds", _("Refunds"), SECTION_TAX, TAX + (R.AUDITOR,), url_name="tax:refund-list"),
    NavEntry("tax_entry_report", _("Daily treasury entries"), SECTION_TAX, TAX + (R.AUDITOR,),
             url_name="tax:entry-report"),
    # A tax an individual pays from a personal wallet, taken at the tax hall's counter by tax staff.
    NavEntry("tax_own", _("An individual pays a tax"), SECTION_TAX, TAX, url_name="tax:own-tax"),
    # An individual pays their own tax vouchers from their own wallets and sees what they paid.
    NavEntry("tax_mine", _("My tax"), SECTION_TAX, INDIVIDUAL, url_name="tax:mine"),
    # Daily three-way reconciliation (对账) with its discrepancy cases; auditors read it.
    NavEntry("tax_reconciliation", _("Reconciliation"), SECTION_TAX, TAX + (R.AUDITOR,), url_name="tax:reconciliation"),
    # Every TIPS message in and out (财税库银横向联网), with its signature check and result code.
    NavEntry("tips_messages", _("TIPS message log"), SECTION_TAX, TAX + (R.AUDITOR,),
             url_name="tips:messages"),
    NavEntry("payroll_batches", _("Payroll runs"), SECTION_PAYROLL, EMPLOYER, url_name="payroll:batch-list"),
    # Uploading is the payroll operator's (the approver checks what was uploaded, maker-checker).
    NavEntry("payroll_upload", _("Upload payroll file"), SECTION_PAYROLL, (R.EMPLOYER_OPERATOR, R.ADMIN),
             url_name="payroll:upload"),
    # The union's own users hold employer roles; auditors read it.
    NavEntry("payroll_unions", _("Union"), SECTION_PAYROLL, EMPLOYER + (R.AUDITOR,), url_name="payroll:union-list"),
    # Every SOAP exchange with the budget-management system (预算管理一体化系统), attempt by attempt.
    NavEntry("budget_messages", _("Message log"), SECTION_FISCAL, FINANCE + (R.AUDITOR,),
             url_name="budget:messages"),
    # Flexible-employment individuals (灵活就业) pay their own premiums; tax staff see their authority's.
    NavEntry("social_flexible_mine", _("My social insurance"), SECTION_SOCIAL, INDIVIDUAL,
             url_name="social_flexible:mine"),
    NavEntry("social_flexible_enrolments", _("Flexible-employment enrolments"), SECTION_SOCIAL,
             TAX + (R.AUDITOR,), url_name="social_flexible:staff-list"),
    # Employers' monthly declarations (社保费申报): employers prepare, declare and pay; tax staff read their
    # authority's; auditors read all.
    NavEntry("social_declarations", _("Premium declarations"), SECTION_SOCIAL, EMPLOYER + TAX + (R.AUDITOR,),
             url_name="social:declaration-list"),
    # Reconciliation of both halves' payments (社保费对账): tax staff work their authority's cases; auditors read.
    NavEntry("social_reconciliation", _("Premium reconciliation"), SECTION_SOCIAL, TAX + (R.AUDITOR,),
             url_name="social:reconciliation"),
    NavEntry("ledger", _("Ledger"), SECTION_AUDIT, AUDIT, url_name="ledger-account-list"),
    NavEntry("trace_verify", _("Trace integrity"), SECTION_AUDIT, AUDIT, url_name="trace:verify"),
    NavEntry("receipt_verify", _("Verify a receipt"), SECTION_VERIFY, url_name="receipts:verify"),
    # Django admin: reference data (organizations, wallets, accounts) and users with their memberships.
    NavEntry("reference_data", _("Reference data and users"), SECTION_SYSTEM, (R.ADMIN,), url_name="admin:index",
             staff_only=True),
]


def _resolve(entry: NavEntry) -> str:
    return reverse(entry.url_name)


def visible_entries(user) -> list[NavEntry]:
    """The entries a user's roles give them (none for an anonymous user)."""
    if not getattr(user, "is_authenticated", False):
        return []
    held = user_roles(user)
    return [e for e in ENTRIES
            if (e.roles is EVERYONE or held & set(e.roles)) and (user.is_staff or not e.staff_only)]


def nav_links(user, *, current_path: str = "") -> list[NavLink]:
    """The user's entries; the one whose address is the longest prefix of the current path is active
    (on /tax/deductions/ that is "/tax/deductions/", not the agreements' "/tax/")."""
    entries = [(entry, _resolve(entry)) for entry in visible_entries(user)]
    matching = [url for _, url in entries if (current_path == url if url == "/" else current_path.startswith(url))]
    active_url = max(matching, key=len, default=None)
    return [NavLink(entry.key, str(entry.label), str(entry.section), url, url == active_url)
            for entry, url in entries]


def nav_sections(user, *, current_path: str = "") -> list[tuple[str, list[NavLink]]]:
    """Links grouped by section, in the order sections first appear in ENTRIES."""
    sections: dict[str, list[NavLink]] = {}
    for link in nav_links(user, current_path=current_path):
        sections.setdefault(link.section, []).append(link)
    return list(sections.items())
