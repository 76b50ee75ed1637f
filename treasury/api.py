"""REST API of the treasury core: transfers and wallets, read-only, scoped to the caller's organization; and for
auditors and administrators the ledger (accounts with balances, an account's entries with the balance after each).

Querysets come from `treasury.selectors` (which start from `treasury.access.scoping`): another
organization's transfer answers 404, exactly like one that does not exist.
"""
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action

from treasury import identifiers, selectors
from treasury.access.api_errors import ErrorSerializer, JsonErrorsMixin
from treasury.access.labels import transfer_state_choices
from treasury.access import roles
from treasury.access.permissions import API_AUTHENTICATION, ReadOnlyForAuditors, roles_permission
from treasury.business_days import BusinessDaySerializerField
from treasury.money import fen_to_yuan_str
from treasury.models import LedgerAccount, LedgerEntry, Transfer, TransferState, Wallet


class WalletRefSerializer(serializers.ModelSerializer):
    """A wallet as a party of a transfer: personal data masked."""

    wallet_id = serializers.CharField(source="masked_wallet_id", help_text="masked: first 4 and last 4 digits")
    holder_name = serializers.CharField(source="masked_holder_name", help_text="masked for personal wallets")

    class Meta:
        model = Wallet
        fields = ["wallet_id", "wallet_type", "holder_name"]


class OrganizationRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    org_type = serializers.CharField()


class MaskedWalletIdField(serializers.CharField):
    """A wallet id as lists show it: first 4 and last 4 digits."""

    def to_representation(self, value) -> str:
        return identifiers.mask_wallet_id(value)


class ConditionsSerializer(serializers.Serializer):
    """A payment's smart-contract conditions (Conditions.to_json()), the allowed payees' wallet ids masked as
    every wallet id of another party is: the pages show only how many there are."""

    allowed_payees = serializers.ListField(child=MaskedWalletIdField(),
                                           help_text="wallet ids, masked; empty: any payee")
    payee_category = serializers.CharField(help_text="WT01 personal, WT09 corporate; empty: any")
    purposes = serializers.ListField(child=serializers.CharField(), help_text="purpose codes; empty: any")
    expires_at = serializers.DateTimeField(allow_null=True, help_text="spend-by time")


class TransferSerializer(serializers.ModelSerializer):
    state = serializers.ChoiceField(choices=transfer_state_choices(), read_only=True)
    amount_yuan = serializers.SerializerMethodField(help_text='amount in yuan as a decimal string, e.g. "1234.56"')
    payer = WalletRefSerializer(read_only=True)
    payee = WalletRefSerializer(read_only=True)
    organization = OrganizationRefSerializer(read_only=True)
    conditions = ConditionsSerializer(read_only=True, allow_null=True)
    trace_url = serializers.SerializerMethodField()

    class Meta:
        model = Transfer
        fields = [
            "id", "idempotency_key", "state", "amount_fen", "amount_yuan", "payer", "payee", "organization",
            "batch_ref", "purpose_code", "memo", "source_ref", "conditions", "operator_txn_id", "failure_code",
            "failure_message", "created_at", "submitted_at", "settled_at", "finished_at", "trace_url",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_amount_yuan(self, obj: Transfer) -> str:
        return fen_to_yuan_str(obj.amount_fen)

    def get_trace_url(self, obj: Transfer) -> str:
        return reverse("trace:transfer", kwargs={"transfer_id": obj.pk})


class LedgerEntrySerializer(serializers.ModelSerializer):
    account = serializers.SerializerMethodField(help_text="account code; wallet ids masked")

    class Meta:
        model = LedgerEntry
        fields = ["account", "kind", "amount_fen", "posted_at"]

    def get_account(self, obj: LedgerEntry) -> str:
        if obj.account.wallet_id is not None:
            return f"wallet:{identifiers.mask_wallet_id(obj.account.wallet.wallet_id)}"
        return obj.account.code


class TransferDetailSerializer(TransferSerializer):
    entries = serializers.SerializerMethodField()
    receipt_url = serializers.SerializerMethodField(help_text="the PDF receipt, once the transfer has one")

    class Meta(TransferSerializer.Meta):
        fields = TransferSerializer.Meta.fields + ["entries", "receipt_url"]
        read_only_fields = fields

    @extend_schema_field(LedgerEntrySerializer(many=True))
    def get_entries(self, obj: Transfer):
        return LedgerEntrySerializer(selectors.transfer_entries(transfer=obj), many=True).data

    def get_receipt_url(self, obj: Transfer) -> str | None:
        receipt = selectors.transfer_receipt(transfer=obj)
        return reverse("receipts:download", kwargs={"number": receipt.number}) if receipt is not None else None


class WalletSerializer(serializers.ModelSerializer):
    wallet_id = serializers.SerializerMethodField(help_text="whole for corporate wallets, masked for personal ones")
    holder_name = serializers.CharField(source="masked_holder_name", read_only=True)
    operator = OrganizationRefSerializer(read_only=True)
    balance_fen = serializers.SerializerMethodField(help_text="ledger balance in fen (null without a ledger account)")

    class Meta:
        model = Wallet
        fields = ["id", "wallet_id", "wallet_type", "wallet_class", "holder_name", "operator", "status", "balance_fen"]
        read_only_fields = fields

    def get_wallet_id(self, obj: Wallet) -> str:
        return obj.masked_wallet_id if obj.is_personal else obj.wallet_id

    def get_balance_fen(self, obj: Wallet) -> int | None:
        account = getattr(obj, "ledger_account", None)
        return account.balance_fen if account is not None else None


class TransferFilterSerializer(serializers.Serializer):
    """Query parameters of the transfer list (validated: a wrong value is a 400, not an empty list)."""

    state = serializers.ChoiceField(choices=TransferState.values, required=False)
    created_date = BusinessDaySerializerField(required=False)
    batch_ref = serializers.CharField(required=False, allow_blank=True, max_length=80)


ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}

TRANSFER_FILTERS = [
    OpenApiParameter("state", OpenApiTypes.STR, enum=[v for v, _ in transfer_state_choices()],
                     description="only transfers in this state"),
    OpenApiParameter("created_date", OpenApiTypes.DATE,
                     description="only transfers created on this day (Asia/Shanghai), YYYY-MM-DD"),
    OpenApiParameter("batch_ref", OpenApiTypes.STR, description="only transfers of this batch"),
]


@extend_schema_view(
    list=extend_schema(summary="Transfers the caller may see", tags=["transfers"], parameters=TRANSFER_FILTERS,
                       responses={200: TransferSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="One transfer with its ledger entries", tags=["transfers"],
                           responses={200: TransferDetailSerializer, **ERRORS}),
)
class TransferViewSet(JsonErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors]
    lookup_value_regex = r"\d+"
    queryset = Transfer.objects.none()  # for the schema; requests use get_queryset

    def get_serializer_class(self):
        return TransferDetailSerializer if self.action == "retrieve" else TransferSerializer

    def get_queryset(self):
        filters = TransferFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.transfer_list(user=self.request.user, **filters.validated_data)


@extend_schema_view(
    list=extend_schema(summary="Wallets of the caller's organization", tags=["wallets"], responses={200: WalletSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="One wallet", tags=["wallets"], responses={200: WalletSerializer, **ERRORS}),
)
class WalletViewSet(JsonErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors]
    serializer_class = WalletSerializer
    lookup_value_regex = r"\d+"
    queryset = Wallet.objects.none()

    def get_queryset(self):
        return selectors.wallet_list(user=self.request.user).select_related("ledger_account")


# ---------------------------------------------------------------------------------------------
# The ledger (auditors and administrators)
# ---------------------------------------------------------------------------------------------


class LedgerAccountSerializer(serializers.ModelSerializer):
    code = serializers.SerializerMethodField(help_text="the account's code; a wallet's id masked in it")
    name = serializers.SerializerMethodField(help_text="the holder's name, masked for a person")
    organization = OrganizationRefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = LedgerAccount
        fields = ["id", "code", "name", "kind", "organization", "balance_fen", "updated_at"]
        read_only_fields = fields

    def get_code(self, obj: LedgerAccount) -> str:
        return f"wallet:{obj.wallet.masked_wallet_id}" if obj.wallet_id is not None else obj.code

    def get_name(self, obj: LedgerAccount) -> str:
        return obj.wallet.masked_holder_name if obj.wallet_id is not None else obj.name


class LedgerAccountEntrySerializer(serializers.ModelSerializer):
    batch_ref = serializers.CharField(source="transfer.batch_ref", read_only=True)
    source_ref = serializers.CharField(source="transfer.source_ref", read_only=True)
    balance_after_fen = serializers.IntegerField(read_only=True, help_text="the account's balance right after it")

    class Meta:
        model = LedgerEntry
        fields = ["id", "transfer_id", "kind", "amount_fen", "balance_after_fen", "posted_at", "batch_ref", "source_ref"]
        read_only_fields = fields


class LedgerAccountFilterSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=LedgerAccount.Kind.values, required=False)
    search = serializers.CharField(required=False, allow_blank=True, max_length=64)


class EntryDaysSerializer(serializers.Serializer):
    posted_from = BusinessDaySerializerField(required=False)
    posted_to = BusinessDaySerializerField(required=False)


@extend_schema_view(
    list=extend_schema(summary="Ledger accounts with their balances (auditors, administrators)", tags=["ledger"],
                       parameters=[OpenApiParameter("kind", OpenApiTypes.STR, enum=LedgerAccount.Kind.values),
                                   OpenApiParameter("search", OpenApiTypes.STR,
                                                    description="part of a code or name, or a whole wallet id")],
                       responses={200: LedgerAccountSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="One ledger account", tags=["ledger"],
                           responses={200: LedgerAccountSerializer, **ERRORS}),
)
class LedgerAccountViewSet(JsonErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [roles_permission(roles.AUDITOR)]
    serializer_class = LedgerAccountSerializer
    lookup_value_regex = r"\d+"
    queryset = LedgerAccount.objects.none()

    def get_queryset(self):
        filters = LedgerAccountFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.ledger_accounts(kind=filters.validated_data.get("kind", ""),
                                         search=filters.validated_data.get("search", ""))

    def get_object(self) -> LedgerAccount:
        return selectors.ledger_account_get(account_id=self.kwargs["pk"])

    @extend_schema(summary="An account's entries, newest first, each with the balance after it", tags=["ledger"],
                   parameters=[OpenApiParameter("posted_from", OpenApiTypes.DATE),
                               OpenApiParameter("posted_to", OpenApiTypes.DATE)],
                   responses={200: LedgerAccountEntrySerializer(many=True), **ERRORS})
    @action(detail=True, methods=["get"])
    def entries(self, request, pk=None):
        account = self.get_object()
        days = EntryDaysSerializer(data=request.query_params)
        days.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.ledger_entries(account=account, **days.validated_data))
        selectors.with_balance_after(account=account, entries=page)
        return self.get_paginated_response(LedgerAccountEntrySerializer(page, many=True).data)
