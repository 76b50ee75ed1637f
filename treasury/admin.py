"""Django admin for reference data. Balances, entries and transfers are written only by the treasury
services, so the admin shows them and never edits them."""
from django.contrib import admin

from treasury import identifiers
from treasury.logmask import mask_text
from treasury.models import LedgerAccount, LedgerEntry, Organization, Person, Transfer, Wallet


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "org_type", "uscc", "code", "parent"]
    list_filter = ["org_type"]
    search_fields = ["name", "uscc", "code"]
    raw_id_fields = ["parent"]


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["masked_name", "masked_resident_id", "created_at"]
    search_fields = ["=resident_id", "name"]  # exact ID lookup only: no partial-ID fishing

    @admin.display(description="姓名 (name)")
    def masked_name(self, obj):
        return identifiers.mask_name(obj.name)

    @admin.display(description="公民身份号码 (resident ID number)")
    def masked_resident_id(self, obj):
        return identifiers.mask_resident_id(obj.resident_id)


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    list_display = ["masked_wallet_id", "wallet_type", "wallet_class", "masked_holder_name", "operator", "status"]
    list_filter = ["wallet_type", "wallet_class", "status", "operator"]
    search_fields = ["=wallet_id", "holder_org__name"]
    raw_id_fields = ["holder_org", "holder_person", "operator"]


@admin.register(LedgerAccount)
class LedgerAccountAdmin(admin.ModelAdmin):
    # A wallet's account is coded "wallet:<wallet id>" and named after its holder: listed masked, as wallets are.
    list_display = ["masked_code", "masked_name", "kind", "organization", "balance_fen", "updated_at"]
    list_select_related = ["wallet", "organization"]
    list_filter = ["kind"]
    search_fields = ["=code", "name"]  # whole codes only: no partial wallet-id fishing
    raw_id_fields = ["wallet", "organization"]
    # The posting service keeps balances with the entries, in one transaction.
    readonly_fields = ["balance_fen", "updated_at"]

    @admin.display(description="代码 (code)", ordering="code")
    def masked_code(self, obj):
        return mask_text(obj.code)

    @admin.display(description="名称 (name)", ordering="name")
    def masked_name(self, obj):
        return identifiers.mask_name(obj.name) if obj.wallet_id and obj.wallet.is_personal else obj.name

    def has_delete_permission(self, request, obj=None):
        return False  # accounts are kept for ever (a trigger refuses it on PostgreSQL: treasury migration 0005)


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    fields = ["account", "kind", "amount_fen", "posted_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "organization", "batch_ref", "amount_fen", "state"]
    list_filter = ["state", "organization"]
    search_fields = ["=id", "=idempotency_key", "batch_ref", "source_ref", "=operator_txn_id"]
    date_hierarchy = "created_at"
    inlines = [LedgerEntryInline]
    list_select_related = ["organization"]
