from django.contrib import admin

from .models import RegionFund


@admin.register(RegionFund)
class RegionFundAdmin(admin.ModelAdmin):
    """Where each region's flexible premiums are collected: set up by an administrator."""

    list_display = ("region", "collecting_authority", "fund_wallet")
    raw_id_fields = ("fund_wallet",)
