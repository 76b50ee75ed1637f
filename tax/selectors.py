"""Reads for pages and the API, already scoped to the user's tax authority (auditors and
administrators see every authority)."""
from __future__ import annotations

from datetime import date

from django.db.models import Sum

from treasury.access.scoping import sees_all_organizations, user_organization

from .models import DeductionPackage, TaxAgreement, TaxDeduction, TreasuryEntry


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


def visible_deductions(user):
    return _scoped(TaxDeduction.objects.all(), user)


def visible_packages(user):
    return _scoped(DeductionPackage.objects.all(), user)


def daily_entry_report(*, entry_date: date, user) -> list[dict]:
    """入库日报 (daily entry report): amounts credited on a day by tax type and budget level, with the
    central and local shares."""
    rows = (_scoped(TreasuryEntry.objects.filter(entry_date=entry_date), user)
            .values("tax_type_name", "budget_type", "budget_level_code")
            .annotate(amount_fen=Sum("amount_fen"), central_fen=Sum("central_fen"), local_fen=Sum("local_fen"))
            .order_by("tax_type_name", "budget_type", "budget_level_code"))
    return list(rows)
