"""Reads for pages and the API, already scoped to the user's tax authority (auditors and
administrators see every authority)."""
from __future__ import annotations

from datetime import date

from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from treasury.access import roles
from treasury.access.scoping import sees_all_organizations, user_organization
from treasury.models import Organization, Transfer
from treasury.trace.models import TraceEvent
from treasury.waiting import Waiting

from .models import DeductionPackage, Refund, RefundOrder, StopPaymentRequest, TaxAgreement, TaxDeduction, TaxReversal, TreasuryEntry
from .models import DECIDED_DEDUCTION_STATES
from .models import AgreementState as A
from .models import RefundOrderState as RO
from .services import my_wallets

# Who reads the tax pages and API (administrators always pass); only tax staff act.
READ_ROLES = (roles.TAX_STAFF, roles.AUDITOR)


def _tax_org_codes(user) -> list[str] | None:
    """None: every authority; else the codes the user may see (its own tax authority's)."""
    if sees_all_organizations(user):
        return None
    org = user_organization(user)
    return [org.code] if org is not None and org.code else []


def _scoped(qs, user):
    codes = _tax_org_codes(user)
    return qs if codes is None else qs.filter(tax_org_code__in=codes)


def visible_agreements(user):
    return _scoped(TaxAgreement.objects.select_related("wallet"), user)


def visible_refund_orders(user):
    return _scoped(RefundOrder.objects.all(), user)


def visible_deductions(user):
    return _scoped(TaxDeduction.objects.select_related("agreement"), user)


def visible_packages(user):
    return _scoped(DeductionPackage.objects.all(), user)


def _entrusted_between(qs, date_from: date | None, date_to: date | None):
    if date_from:
        qs = qs.filter(entrust_date__gte=date_from)
    if date_to:
        qs = qs.filter(entrust_date__lte=date_to)
    return qs


def reversal_list(*, user, date_from: date | None = None, date_to: date | None = None):
    """Reversal requests (1021) with their answers, newest first, by the date of the request."""
    qs = _scoped(TaxReversal.objects.select_related("deduction"), user)
    return _entrusted_between(qs, date_from, date_to).order_by("-received_at", "-pk")


def stop_payment_list(*, user, date_from: date | None = None, date_to: date | None = None):
    """Stop-payment requests (1123) with what each stopped, newest first, by the date of the request."""
    qs = _scoped(StopPaymentRequest.objects.select_related("package"), user)
    return _entrusted_between(qs, date_from, date_to).order_by("-received_at", "-pk")


def daily_entry_report(*, entry_date: date, user) -> list[dict]:
    """入库日报 (daily entry report): amounts credited on a day by tax type and budget level, with the
    central and local shares."""
    rows = (_scoped(TreasuryEntry.objects.filter(entry_date=entry_date), user)
            .values("tax_type_name", "budget_type", "budget_level_code")
            .annotate(amount_fen=Sum("amount_fen"), central_fen=Sum("central_fen"), local_fen=Sum("local_fen"))
            .order_by("tax_type_name", "budget_type", "budget_level_code"))
    return list(rows)


# ---------------------------------------------------------------------------------------------
# Pages and API: filtered lists, one object (another authority's is a 404), history
# ---------------------------------------------------------------------------------------------


def agreement_list(*, user, state: str = "", taxpayer: str = "", search: str = ""):
    qs = visible_agreements(user)
    if state:
        qs = qs.filter(state=state)
    if taxpayer:
        qs = qs.filter(taxpayer_id__iexact=taxpayer.strip())
    if search:
        search = search.strip()
        qs = qs.filter(Q(protocol_no__icontains=search) | Q(taxpayer_name__icontains=search)
                       | Q(wallet__wallet_id=search))
    return qs.order_by("-pk")  # newest first through the primary key's index, as deduction_list


def agreement_get(*, user, agreement_id: int) -> TaxAgreement:
    agreement = visible_agreements(user).filter(pk=agreement_id).first()
    if agreement is None:
        raise Http404("no such agreement")
    return agreement


def agreement_history(agreement: TaxAgreement) -> list[TraceEvent]:
    """The agreement's trace events (signed, verified, activated, suspended ...), oldest first."""
    return list(TraceEvent.objects.filter(stream_key=agreement.stream_key).order_by("seq"))


def agreement_actions(*, user, agreement: TaxAgreement) -> list[str]:
    """The state changes the user may make now: tax staff of the agreement's own authority or an
    administrator, never an auditor."""
    if roles.is_read_only(user):
        return []
    if not roles.has_role(user, roles.ADMIN):
        org = user_organization(user)
        if not roles.has_role(user, roles.TAX_STAFF) or org is None or org.code != agreement.tax_org_code:
            return []
    moves = {A.VERIFIED: ["activate", "revoke"], A.ACTIVE: ["suspend", "revoke"],
             A.SUSPENDED: ["resume", "revoke"], A.PENDING: ["revoke"]}
    return moves.get(agreement.state, [])


def deduction_list(*, user, date_from: date | None = None, date_to: date | None = None, result_code: str = "",
                   kind: str = "", taxpayer: str = "", package_id: int | None = None):
    qs = _entrusted_between(visible_deductions(user).select_related("package", "agreement"), date_from, date_to)
    if result_code:
        qs = qs.filter(result_code=result_code)
    if kind:
        qs = qs.filter(kind=kind)
    if taxpayer:
        taxpayer = taxpayer.strip()
        qs = qs.filter(Q(taxpayer_id__iexact=taxpayer) | Q(tax_pay_name__icontains=taxpayer)
                       | Q(agreement__taxpayer_id__iexact=taxpayer))
    if package_id is not None:
        qs = qs.filter(package_id=package_id)
    # Newest first by id, the order they were received in: the primary key's index gives a page at once,
    # where ordering by received time sorts every deduction of the authority (0.9 s at 1,000,000).
    return qs.order_by("-pk")


def tax_authorities() -> list[tuple[str, str]]:
    """(code, name) of every tax authority with a code, by code: where an individual's voucher can be paid."""
    return list(Organization.objects.filter(org_type=Organization.Type.TAX_AUTHORITY).exclude(code="")
                .order_by("code").values_list("code", "name"))


def my_deductions(user):
    """The signed-in individual's taxes, newest first: paid from their wallets here (own payments and
    deductions), and deducted or refused under their agreements. Found through indexes (the transfers'
    payer, the deductions' agreement), not by walking the deductions; an own payment refused before its
    transfer was made (a frozen wallet) is not among them. Nobody else's: empty for other users."""
    wallets = list(my_wallets(user).values_list("pk", flat=True))
    if not wallets:
        return TaxDeduction.objects.none()
    paid = Transfer.objects.filter(payer_id__in=wallets, source_type=ContentType.objects.get_for_model(TaxDeduction))
    ids = set(paid.values_list("source_id", flat=True))
    ids |= set(TaxDeduction.objects.filter(
        agreement_id__in=TaxAgreement.objects.filter(wallet_id__in=wallets).values("pk")).values_list("pk", flat=True))
    return (TaxDeduction.objects.filter(pk__in=ids).select_related("transfer__receipt")
            .order_by("-created_at", "-pk"))


def my_refunds(user):
    """The tax refunds (退库) paid or to be paid into the signed-in individual's wallets, newest first (through
    the refunds' payee-wallet index). Empty for other users."""
    return (Refund.objects.filter(payee_wallet__in=my_wallets(user).values("pk")).select_related("transfer__receipt")
            .order_by("-created_at", "-pk"))


def deduction_totals(qs) -> dict:
    """Count and amount of a list, and of its succeeded deductions."""
    totals = qs.order_by().aggregate(total_count=Count("pk"), total_fen=Sum("amount_fen"),
                                     succeeded_count=Count("pk", filter=Q(state="succeeded")),
                                     succeeded_total_fen=Sum("amount_fen", filter=Q(state="succeeded")))
    return {"count": totals["total_count"] or 0, "amount_fen": totals["total_fen"] or 0,
            "succeeded": totals["succeeded_count"] or 0, "succeeded_fen": totals["succeeded_total_fen"] or 0}


def deduction_get(*, user, deduction_id: int) -> TaxDeduction:
    deduction = (visible_deductions(user).select_related("package", "agreement", "transfer")
                 .filter(pk=deduction_id).first())
    if deduction is None:
        raise Http404("no such deduction")
    return deduction


def deduction_history(deduction: TaxDeduction) -> list[TraceEvent]:
    """The events of the deduction's stream, oldest first: a real-time deduction's or an own payment's own
    (received, debiting, succeeded, reversed ...); a batch item's are its package's (received, each chunk, items
    decided, done, result acknowledged), which tell its story with the others'."""
    return list(TraceEvent.objects.filter(stream_key=deduction.stream_key).order_by("seq"))


def deduction_reversals(deduction: TaxDeduction) -> list[TaxReversal]:
    """The reversal requests (1021) made of the deduction and their answers, oldest first."""
    return list(deduction.reversals.order_by("received_at", "pk"))


def deduction_entries(deduction: TaxDeduction) -> list[TreasuryEntry]:
    """The deduction's treasury entries (入库) by tax type, and the negative ones of its reversal if any."""
    return list(deduction.entries.order_by("entry_date", "reverses", "project_id", "pk"))


def package_list(*, user, state: str = ""):
    qs = visible_packages(user)
    if state:
        qs = qs.filter(state=state)
    return qs.order_by("-received_at", "-pk")


def package_get(*, user, package_id: int) -> DeductionPackage:
    package = visible_packages(user).filter(pk=package_id).first()
    if package is None:
        raise Http404("no such package")
    return package


def entry_report_totals(rows: list[dict]) -> dict:
    return {key: sum(row[key] for row in rows) for key in ("amount_fen", "central_fen", "local_fen")}


def waiting_for(user) -> list[Waiting]:
    """Refund orders to review, and to approve (not those the user reviewed: maker-checker), and agreements
    the tax system verified that wait to be put in force (treasury.waiting)."""
    if roles.is_read_only(user) or not roles.has_role(user, roles.TAX_STAFF, roles.ADMIN):
        return []
    orders = visible_refund_orders(user).aggregate(
        to_review=Count("pk", filter=Q(state=RO.RECEIVED)),
        to_approve=Count("pk", filter=Q(state=RO.REVIEWED) & ~Q(reviewed_by=user)))
    refunds, agreements = reverse("tax:refund-list"), reverse("tax:agreement-list")
    return [
        Waiting("tax_refunds_to_review", _("Refund orders to review"), orders["to_review"],
                f"{refunds}?state={RO.RECEIVED}"),
        Waiting("tax_refunds_to_approve", _("Refund orders to approve"), orders["to_approve"],
                f"{refunds}?state={RO.REVIEWED}"),
        Waiting("tax_agreements_to_activate", _("Agreements verified, to put in force"),
                visible_agreements(user).filter(state=A.VERIFIED).count(), f"{agreements}?state={A.VERIFIED}"),
    ]


def failure_handled():
    """A failed transfer whose deduction is decided: its result went to the tax system, or to the individual who
    paid (treasury.waiting.HANDLED_FAILURES)."""
    return Q(source_type_id=ContentType.objects.get_for_model(TaxDeduction).pk) & Exists(
        TaxDeduction.objects.filter(pk=OuterRef("source_id"), state__in=DECIDED_DEDUCTION_STATES))
