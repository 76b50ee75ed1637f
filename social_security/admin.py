"""Django admin for the rules table. Declarations are written only by the services, so they are not here."""
from django.contrib import admin

from social_security.models import (
    ContributionBase, ContributionRate, EmployerRiskClass, FundAccount, Region, WorkInjuryClassRate,
    derive_effective_to, derive_injury_effective_to,
)
from treasury.money import format_yuan


class RateInline(admin.TabularInline):
    model = ContributionRate
    extra = 0
    fields = ["insurance_type", "effective_from", "effective_to", "employer_rate", "individual_rate",
              "flexible_rate", "flexible_account_rate"]
    readonly_fields = ["effective_to"]


class InjuryRateInline(admin.TabularInline):
    model = WorkInjuryClassRate
    extra = 0
    fields = ["risk_class", "effective_from", "effective_to", "employer_rate"]
    readonly_fields = ["effective_to"]


class BaseInline(admin.TabularInline):
    model = ContributionBase
    extra = 0


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "late_fee_daily_rate", "rounding"]
    search_fields = ["code", "name"]
    inlines = [RateInline, InjuryRateInline, BaseInline]

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        # Inline deletes go through the queryset; re-derive the periods of every type once more.
        if formset.model is ContributionRate:
            for insurance_type in {f.instance.insurance_type for f in formset.forms if f.instance.insurance_type}:
                derive_effective_to(region_id=form.instance.pk, insurance_type=insurance_type)
        if formset.model is WorkInjuryClassRate:
            for risk_class in {f.instance.risk_class for f in formset.forms if f.instance.risk_class}:
                derive_injury_effective_to(region_id=form.instance.pk, risk_class=risk_class)


@admin.register(ContributionRate)
class ContributionRateAdmin(admin.ModelAdmin):
    list_display = ["region", "insurance_type", "effective_from", "effective_to", "employer_rate",
                    "individual_rate", "flexible_rate", "flexible_account_rate"]
    list_filter = ["region", "insurance_type"]
    readonly_fields = ["effective_to"]

    def delete_queryset(self, request, queryset):
        # A bulk delete skips Model.delete(): re-derive each touched region and type afterwards.
        touched = set(queryset.values_list("region_id", "insurance_type"))
        super().delete_queryset(request, queryset)
        for region_id, insurance_type in touched:
            derive_effective_to(region_id=region_id, insurance_type=insurance_type)


@admin.register(WorkInjuryClassRate)
class WorkInjuryClassRateAdmin(admin.ModelAdmin):
    list_display = ["region", "risk_class", "effective_from", "effective_to", "employer_rate"]
    list_filter = ["region", "risk_class"]
    readonly_fields = ["effective_to"]

    def delete_queryset(self, request, queryset):
        # A bulk delete skips Model.delete(): re-derive each touched region and class afterwards.
        touched = set(queryset.values_list("region_id", "risk_class"))
        super().delete_queryset(request, queryset)
        for region_id, risk_class in touched:
            derive_injury_effective_to(region_id=region_id, risk_class=risk_class)


@admin.register(EmployerRiskClass)
class EmployerRiskClassAdmin(admin.ModelAdmin):
    list_display = ["employer", "region", "risk_class", "effective_from"]
    list_filter = ["region", "risk_class"]
    raw_id_fields = ["employer"]


@admin.register(ContributionBase)
class ContributionBaseAdmin(admin.ModelAdmin):
    list_display = ["region", "year", "average_wage", "floor", "ceiling"]
    list_filter = ["region"]

    @admin.display(description="社平工资 (average wage)")
    def average_wage(self, obj):
        return format_yuan(obj.average_wage_fen)

    @admin.display(description="下限 (floor)")
    def floor(self, obj):
        return format_yuan(obj.floor_fen)

    @admin.display(description="上限 (ceiling)")
    def ceiling(self, obj):
        return format_yuan(obj.ceiling_fen)


@admin.register(FundAccount)
class FundAccountAdmin(admin.ModelAdmin):
    list_display = ["region", "tax_authority", "wallet"]
    raw_id_fields = ["tax_authority", "wallet"]
