"""REST API of the tax domain: three-party agreements (list, sign, detail, activate, suspend, resume,
revoke), deductions (list, detail), batch packages (list, detail, progress), the daily treasury entry
report (JSON and CSV) and a tax paid by an individual at the counter.

Querysets come from `tax.selectors` (scoped: another tax authority's agreement answers 404, like one
that does not exist; roles other than tax staff and auditors get 403; auditors only read). Actions
call one service each; every refusal answers JSON `{"code", "message"}`: 403 for access, 409 for a move
the agreement's state does not allow, 400 for a refused request (the service's code), 503 when the
operator cannot be asked.
"""
from __future__ import annotations

from django.utils import timezone
from django_fsm import ConcurrentTransition, TransitionNotAllowed
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from treasury.access import roles
from treasury.access.api_errors import ErrorSerializer, JsonErrorsMixin, api_exception_handler
from treasury.access.permissions import API_AUTHENTICATION, ReadOnlyForAuditors, roles_permission
from treasury.api_limits import IdField
from treasury.business_days import BusinessDaySerializerField
from treasury.money import fen_to_yuan_str
from treasury.services.transfers import OperatorUnavailable
from treasury.trace.api import EventDetailSerializer
from treasury.trace.labels import actor_label, event_label
from treasury.trace.selectors import event_details, mask_data

from . import selectors, services
from .models import AgreementState, DeductionKind, DeductionPackage, DeductionState, PackageState, TaxAgreement
from .models import Refund, RefundOrder, RefundOrderState, RefundState, StopPaymentRequest, TaxDeduction, TaxReversal
from .services import MAX_AMOUNT_FEN, VOUCHER_NUMBER
from .views import (entry_report_csv, entry_report_data, entry_report_pdf, package_progress_data, pay_own_tax,
                    shown_agreement)
from .views import agreements_csv, deductions_csv, shown_deduction, shown_refund
from .views import refund_actions, refund_order_get

# Plain strings in the schema: enums here would clash with other apps' enum names.
AGREEMENT_STATE_HELP = "agreement state: " + ", ".join(AgreementState.values)
DEDUCTION_STATE_HELP = "deduction state: " + ", ".join(DeductionState.values)
PACKAGE_STATE_HELP = "package state: " + ", ".join(PackageState.values)
# Refusals about the agreement's or the voucher's state rather than the request.
CONFLICT_CODES = {"already_signed", "protocol_taken", "idempotency_conflict"}
FORBIDDEN_CODES = {"individual_required", "not_your_wallet"}

TaxRoles = roles_permission(*selectors.READ_ROLES)


def _error(code: str, message: str, http_status: int) -> Response:
    return Response({"code": code, "message": message}, status=http_status)


def tax_exception_handler(exc, context):
    """Tax refusals as `{"code", "message"}`; everything else as the project's API errors."""
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        return _error("invalid_state", "协议当前状态不允许此操作 (the agreement's state does not allow this)",
                      status.HTTP_409_CONFLICT)
    if isinstance(exc, services.TaxError):
        http_status = (status.HTTP_409_CONFLICT if exc.code in CONFLICT_CODES
                       else status.HTTP_403_FORBIDDEN if exc.code in FORBIDDEN_CODES else status.HTTP_400_BAD_REQUEST)
        return _error(exc.code, str(exc), http_status)
    if isinstance(exc, OperatorUnavailable):
        return _error("operator_unavailable", f"暂时无法联系运营机构，未做任何记录 (the operator cannot be reached; "
                                              f"nothing was recorded): {exc}", status.HTTP_503_SERVICE_UNAVAILABLE)
    return api_exception_handler(exc, context)


class TaxErrorsMixin(JsonErrorsMixin):
    def get_exception_handler(self):
        return tax_exception_handler


# ---------------------------------------------------------------------------------------------
# Serializers
# ---------------------------------------------------------------------------------------------


class TaxAgreementSerializer(serializers.ModelSerializer):
    """An agreement as a list shows it: a person's name and ID number and the wallet id masked."""

    state = serializers.CharField(read_only=True, help_text=AGREEMENT_STATE_HELP)
    taxpayer_kind = serializers.CharField(read_only=True, help_text="organization or person")
    taxpayer_id = serializers.SerializerMethodField()
    taxpayer_name = serializers.SerializerMethodField()
    wallet_id = serializers.SerializerMethodField()

    class Meta:
        model = TaxAgreement
        fields = ["id", "tax_org_code", "taxpayer_kind", "taxpayer_id", "taxpayer_name", "wallet_id", "pay_op_bk_code",
                  "protocol_no", "signed_date", "state", "state_reason", "last_verification_result",
                  "last_verification_note", "last_verification_at", "created_by", "created_at", "verified_at",
                  "activated_at", "revoked_at"]
        read_only_fields = fields

    def get_taxpayer_id(self, obj: TaxAgreement) -> str:
        return shown_agreement(obj)["taxpayer_id"]

    def get_taxpayer_name(self, obj: TaxAgreement) -> str:
        return shown_agreement(obj)["taxpayer_name"]

    def get_wallet_id(self, obj: TaxAgreement) -> str:
        return shown_agreement(obj)["wallet_id"]


class TaxHistoryEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    kind = serializers.CharField()
    kind_label = serializers.SerializerMethodField(help_text="the kind in words, in the request's language")
    actor = serializers.CharField()
    actor_label = serializers.SerializerMethodField(help_text="the actor in words where it is not a person")
    occurred_at = serializers.DateTimeField()
    data = serializers.SerializerMethodField(help_text="event details, personal data masked (as the trace API)")
    details = serializers.SerializerMethodField(help_text="the same details in words, in stored order")

    def get_kind_label(self, obj) -> str:
        return event_label(obj.kind)

    def get_actor_label(self, obj) -> str:
        return actor_label(obj.actor)

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_data(self, obj) -> dict:
        return mask_data(obj.data)

    @extend_schema_field(EventDetailSerializer(many=True))
    def get_details(self, obj) -> list[dict]:
        return EventDetailSerializer(event_details(obj.data), many=True).data


class TaxAgreementDetailSerializer(TaxAgreementSerializer):
    history = serializers.SerializerMethodField(help_text="the agreement's trace events, oldest first")
    available_actions = serializers.SerializerMethodField(help_text="the state changes the caller may make now")

    class Meta(TaxAgreementSerializer.Meta):
        fields = TaxAgreementSerializer.Meta.fields + ["history", "available_actions"]
        read_only_fields = fields

    @extend_schema_field(TaxHistoryEventSerializer(many=True))
    def get_history(self, obj: TaxAgreement) -> list[dict]:
        return TaxHistoryEventSerializer(selectors.agreement_history(obj), many=True).data

    def get_available_actions(self, obj: TaxAgreement) -> list[str]:
        return selectors.agreement_actions(user=self.context["request"].user, agreement=obj)


class SignAgreementSerializer(serializers.Serializer):
    tax_org_code = serializers.CharField(max_length=12, help_text="征收机关代码, 11 digits")
    taxpayer_id = serializers.CharField(max_length=20, help_text="unified social credit code or resident ID")
    taxpayer_name = serializers.CharField(max_length=200, help_text="as the wallet's holder name")
    wallet_id = serializers.CharField(max_length=32, help_text="the payer's 16-digit e-CNY wallet id")
    protocol_no = serializers.CharField(max_length=60, help_text="协议书号")
    signed_date = BusinessDaySerializerField()


class TaxReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


class TaxDeductionSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(read_only=True, help_text="real_time, batch or own")
    state = serializers.CharField(read_only=True, help_text=DEDUCTION_STATE_HELP)
    # A person's name, ID and wallet as pages show them (`to_representation`: one `shown_deduction` a row).
    tax_pay_name = serializers.CharField(read_only=True)
    taxpayer_id = serializers.CharField(read_only=True)
    pay_acct = serializers.CharField(read_only=True)
    amount_yuan = serializers.SerializerMethodField(help_text="amount in yuan as a decimal string")
    package_id = serializers.IntegerField(read_only=True, allow_null=True)
    agreement_id = serializers.IntegerField(read_only=True, allow_null=True)
    transfer_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = TaxDeduction
        fields = ["id", "kind", "tax_org_code", "entrust_date", "tra_no", "package_id", "agreement_id", "pay_acct",
                  "tax_pay_name", "taxpayer_id", "protocol_no", "amount_fen", "amount_yuan", "tax_vou_no",
                  "tax_types", "budget_type", "budget_level_code", "treasury_code", "state", "result_code",
                  "add_word", "tax_date", "transfer_id", "created_at", "decided_at"]
        read_only_fields = fields

    def to_representation(self, obj: TaxDeduction) -> dict:
        return {**super().to_representation(obj), **shown_deduction(obj)}

    def get_amount_yuan(self, obj: TaxDeduction) -> str:
        return fen_to_yuan_str(obj.amount_fen)


class EntryReportRowSerializer(serializers.Serializer):
    tax_type_name = serializers.CharField()
    budget_type = serializers.CharField(help_text="1 in budget, 2 outside")
    budget_level_code = serializers.CharField(help_text="0 shared, 1 central, 2 province, 3 city, 4 county, 5 township")
    amount_fen = serializers.IntegerField()
    central_fen = serializers.IntegerField()
    local_fen = serializers.IntegerField()


class DeductionEntrySerializer(EntryReportRowSerializer):
    """One treasury entry of a deduction: a row of the entry report, dated, under its project (negative amounts for
    the entries of a reversal)."""

    entry_date = serializers.DateField()
    project_id = serializers.CharField()
    reverses = serializers.BooleanField(help_text="the entry of a reversal (冲正)")


class ReversalRequestSerializer(serializers.ModelSerializer):
    """A reversal request (1021) and the answer given (2021)."""

    cancel_answer = serializers.CharField(read_only=True, help_text="0 reversed, 1 not")
    deduction_id = serializers.IntegerField(read_only=True, allow_null=True, help_text="the deduction it reversed")

    class Meta:
        model = TaxReversal
        fields = ["id", "tax_org_code", "entrust_date", "cancel_no", "ori_entrust_date", "ori_tra_no", "cancel_reason",
                  "deduction_id", "cancel_answer", "result_code", "add_word", "received_at"]
        read_only_fields = fields


class StopPaymentSerializer(serializers.ModelSerializer):
    """A stop-payment request (1123) and the answer given (2123)."""

    ori_tra_no = serializers.CharField(read_only=True, help_text="the item stopped; blank for the whole package")
    package_id = serializers.IntegerField(read_only=True, allow_null=True)
    stop_num = serializers.IntegerField(read_only=True, help_text="items stopped by this request")
    done_num = serializers.IntegerField(read_only=True, help_text="items already decided, left as they were")

    class Meta:
        model = StopPaymentRequest
        fields = ["id", "tax_org_code", "entrust_date", "stop_no", "ori_entrust_date", "ori_pack_no", "ori_tra_no",
                  "stop_reason", "package_id", "stop_num", "stop_amount_fen", "done_num", "result_code", "add_word",
                  "received_at"]
        read_only_fields = fields


class TaxDeductionDetailSerializer(TaxDeductionSerializer):
    """One deduction as its page shows it: besides the list's fields, its treasury entries, the reversal requests
    (1021) made of it, and the events of its trace stream (a batch item's are its package's)."""

    transfer_state = serializers.SerializerMethodField(help_text="the state of the transfer that moved the money")
    entries = serializers.SerializerMethodField(help_text="treasury entries (入库) by tax type and budget level")
    reversals = serializers.SerializerMethodField(help_text="reversal requests (1021) of this deduction")
    history = serializers.SerializerMethodField(help_text="the deduction's trace events, oldest first")

    class Meta(TaxDeductionSerializer.Meta):
        fields = TaxDeductionSerializer.Meta.fields + ["transfer_state", "entries", "reversals", "history"]
        read_only_fields = fields

    def get_transfer_state(self, obj: TaxDeduction) -> str:
        return obj.transfer.state if obj.transfer_id else ""

    @extend_schema_field(DeductionEntrySerializer(many=True))
    def get_entries(self, obj: TaxDeduction) -> list[dict]:
        return DeductionEntrySerializer(selectors.deduction_entries(obj), many=True).data

    @extend_schema_field(ReversalRequestSerializer(many=True))
    def get_reversals(self, obj: TaxDeduction) -> list[dict]:
        return ReversalRequestSerializer(selectors.deduction_reversals(obj), many=True).data

    @extend_schema_field(TaxHistoryEventSerializer(many=True))
    def get_history(self, obj: TaxDeduction) -> list[dict]:
        return TaxHistoryEventSerializer(selectors.deduction_history(obj), many=True).data


class EntrustDatesSerializer(serializers.Serializer):
    date_from = BusinessDaySerializerField(required=False)
    date_to = BusinessDaySerializerField(required=False)


class DeductionFilterSerializer(EntrustDatesSerializer):
    result_code = serializers.CharField(required=False, max_length=5)
    kind = serializers.ChoiceField(choices=DeductionKind.values, required=False)
    taxpayer = serializers.CharField(required=False, max_length=200)
    package = IdField(required=False)


class AgreementFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=AgreementState.values, required=False)
    taxpayer = serializers.CharField(required=False, max_length=20)
    q = serializers.CharField(required=False, max_length=100)


class DeductionPackageSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text=PACKAGE_STATE_HELP)

    class Meta:
        model = DeductionPackage
        fields = ["id", "tax_org_code", "entrust_date", "pack_no", "msg_id", "all_num", "all_amount_fen",
                  "return_term", "treasury_code", "state", "ack_result", "ack_add_word", "succ_num", "succ_amount_fen",
                  "result_pending", "result_acknowledged", "result_attempts", "result_error", "result_fault_code",
                  "received_at", "done_at", "result_sent_at"]
        read_only_fields = fields


class PackageProgressSerializer(serializers.Serializer):
    package_id = serializers.IntegerField()
    state = serializers.CharField(help_text=PACKAGE_STATE_HELP)
    all_num = serializers.IntegerField()
    decided = serializers.IntegerField(help_text="items succeeded, failed or reversed")
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    unknown = serializers.IntegerField()
    items = serializers.DictField(child=serializers.IntegerField(), help_text="items per state")
    succ_num = serializers.IntegerField()
    succ_amount_fen = serializers.IntegerField()
    percent = serializers.IntegerField()
    result_acknowledged = serializers.BooleanField(help_text="the tax system acknowledged the 2102 result")
    finished = serializers.BooleanField(help_text="the package is done")


class EntryReportSerializer(serializers.Serializer):
    day = serializers.DateField()
    amount_fen = serializers.IntegerField()
    central_fen = serializers.IntegerField()
    local_fen = serializers.IntegerField()
    rows = EntryReportRowSerializer(many=True)


class EntryReportQuerySerializer(serializers.Serializer):
    day = BusinessDaySerializerField(required=False)


class OwnTaxSerializer(serializers.Serializer):
    tax_org_code = serializers.CharField(max_length=12)
    taxpayer_id = serializers.CharField(max_length=20, help_text="the individual's resident ID")
    taxpayer_name = serializers.CharField(max_length=200)
    wallet_id = serializers.CharField(max_length=32, help_text="the individual's personal wallet id")
    tax_vou_no = serializers.RegexField(VOUCHER_NUMBER, max_length=20,
                                        help_text="税票号码, 1-20 letters or digits; the same voucher is never debited twice")
    amount_fen = serializers.IntegerField(min_value=1, max_value=MAX_AMOUNT_FEN)
    tax_type_name = serializers.CharField(max_length=60, required=False, default="个人所得税")


class MyTaxSerializer(serializers.Serializer):
    wallet_id = serializers.CharField(max_length=32, help_text="one of your personal wallets registered here")
    tax_org_code = serializers.CharField(max_length=12, help_text="the voucher's tax authority")
    tax_vou_no = serializers.RegexField(VOUCHER_NUMBER, max_length=20,
                                        help_text="税票号码, 1-20 letters or digits; the same voucher is never debited twice")
    amount_fen = serializers.IntegerField(min_value=1, max_value=MAX_AMOUNT_FEN)
    tax_type_name = serializers.CharField(max_length=60, required=False, default="个人所得税")


ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
ACTION_ERRORS = {**ERRORS, 409: ErrorSerializer}
OPERATOR_ERRORS = {**ACTION_ERRORS, 503: ErrorSerializer}
TAGS = ["tax"]


# ---------------------------------------------------------------------------------------------
# Agreements
# ---------------------------------------------------------------------------------------------


def _action_schema(summary: str, request=None):
    return extend_schema(summary=summary, tags=TAGS, request=request,
                         responses={200: TaxAgreementDetailSerializer, **ACTION_ERRORS})


AGREEMENT_FILTERS = [
    OpenApiParameter("state", OpenApiTypes.STR, enum=AgreementState.values, description="only this state"),
    OpenApiParameter("taxpayer", OpenApiTypes.STR, description="taxpayer id"),
    OpenApiParameter("q", OpenApiTypes.STR, description="agreement number, taxpayer name or wallet id"),
]


@extend_schema_view(
    list=extend_schema(
        summary="Three-party agreements the caller may see, newest first", tags=TAGS,
        parameters=AGREEMENT_FILTERS,
        responses={200: TaxAgreementSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(summary="One agreement with its history and the actions the caller may take", tags=TAGS,
                           responses={200: TaxAgreementDetailSerializer, **ERRORS}),
)
class TaxAgreementViewSet(TaxErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, TaxRoles]
    lookup_value_regex = r"\d+"
    queryset = TaxAgreement.objects.none()  # for the schema; requests use get_queryset

    def get_serializer_class(self):
        return TaxAgreementSerializer if self.action == "list" else TaxAgreementDetailSerializer

    def get_queryset(self):
        if self.action == "list":
            return self._filtered()
        return selectors.visible_agreements(self.request.user)

    def _filtered(self):
        filters = AgreementFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        return selectors.agreement_list(user=self.request.user, state=data.get("state", ""),
                                        taxpayer=data.get("taxpayer", ""), search=data.get("q", ""))

    def get_object(self) -> TaxAgreement:
        return selectors.agreement_get(user=self.request.user, agreement_id=self.kwargs["pk"])

    @extend_schema(summary="Every agreement the list's filters select, as CSV (UTF-8 with BOM, streamed, masked as "
                           "in the list)", tags=TAGS, parameters=AGREEMENT_FILTERS,
                   responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="CSV"), **ERRORS})
    @action(detail=False, methods=["get"], pagination_class=None)
    def csv(self, request):
        return agreements_csv(self._filtered())

    def _detail(self, agreement_id: int, http_status=status.HTTP_200_OK) -> Response:
        fresh = selectors.agreement_get(user=self.request.user, agreement_id=agreement_id)
        return Response(TaxAgreementDetailSerializer(fresh, context={"request": self.request}).data,
                        status=http_status)

    @extend_schema(summary="Sign an agreement (the operator checks the wallet and its holder); it waits for the "
                           "tax system's verification (9114)", tags=TAGS, request=SignAgreementSerializer,
                   responses={201: TaxAgreementDetailSerializer, **OPERATOR_ERRORS})
    def create(self, request):
        data = SignAgreementSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        agreement = services.sign_agreement(
            user=request.user, tax_org_code=fields["tax_org_code"], taxpayer_id=fields["taxpayer_id"],
            taxpayer_name=fields["taxpayer_name"], wallet_id=fields["wallet_id"], protocol_no=fields["protocol_no"],
            signed_date=fields["signed_date"], now=timezone.now())
        return self._detail(agreement.pk, status.HTTP_201_CREATED)

    def _run(self, service, **extra) -> Response:
        agreement = self.get_object()  # 404 for another authority's agreement, before anything else
        service(agreement_id=agreement.pk, user=self.request.user, now=timezone.now(), **extra)
        return self._detail(agreement.pk)

    def _run_with_reason(self, service) -> Response:
        self.get_object()
        data = TaxReasonSerializer(data=self.request.data)
        data.is_valid(raise_exception=True)
        return self._run(service, reason=data.validated_data["reason"])

    @_action_schema("Activate a verified agreement (when it is not activated on verification)")
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        return self._run(services.activate_agreement)

    @_action_schema("Suspend an active agreement, with a reason: no deduction until resumed", TaxReasonSerializer)
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        return self._run_with_reason(services.suspend_agreement)

    @_action_schema("Resume a suspended agreement, with a reason", TaxReasonSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._run_with_reason(services.resume_agreement)

    @_action_schema("Revoke an open agreement for good, with a reason", TaxReasonSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        return self._run_with_reason(services.revoke_agreement)


# ---------------------------------------------------------------------------------------------
# Deductions and packages
# ---------------------------------------------------------------------------------------------


ENTRUST_DATES = [OpenApiParameter("date_from", OpenApiTypes.DATE, description="entrust date from"),
                 OpenApiParameter("date_to", OpenApiTypes.DATE, description="entrust date to")]
DEDUCTION_FILTERS = [
    *ENTRUST_DATES,
    OpenApiParameter("result_code", OpenApiTypes.STR, description="TIPS result code, e.g. 90000, 24007"),
    OpenApiParameter("kind", OpenApiTypes.STR, enum=DeductionKind.values),
    OpenApiParameter("taxpayer", OpenApiTypes.STR, description="taxpayer id or part of the name"),
    OpenApiParameter("package", OpenApiTypes.INT, description="only this package's items"),
]


@extend_schema_view(
    list=extend_schema(
        summary="Deductions (real-time, batch items, own payments) the caller may see, newest first", tags=TAGS,
        parameters=DEDUCTION_FILTERS,
        responses={200: TaxDeductionSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(summary="One deduction with its result, treasury entries, reversal requests and history",
                           tags=TAGS, responses={200: TaxDeductionDetailSerializer, **ERRORS}),
)
class TaxDeductionViewSet(TaxErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, TaxRoles]
    lookup_value_regex = r"\d+"
    queryset = TaxDeduction.objects.none()

    def get_serializer_class(self):
        return TaxDeductionSerializer if self.action == "list" else TaxDeductionDetailSerializer

    def get_queryset(self):
        if self.action == "list":
            return self._filtered()
        return selectors.visible_deductions(self.request.user)

    def _filtered(self):
        filters = DeductionFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        return selectors.deduction_list(
            user=self.request.user, date_from=data.get("date_from"), date_to=data.get("date_to"),
            result_code=data.get("result_code", ""), kind=data.get("kind", ""), taxpayer=data.get("taxpayer", ""),
            package_id=data.get("package"))

    def get_object(self) -> TaxDeduction:
        return selectors.deduction_get(user=self.request.user, deduction_id=self.kwargs["pk"])

    @extend_schema(summary="Every deduction the list's filters select, as CSV (UTF-8 with BOM, streamed, masked as in "
                           "the list)", tags=TAGS, parameters=DEDUCTION_FILTERS,
                   responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="CSV"), **ERRORS})
    @action(detail=False, methods=["get"], pagination_class=None)
    def csv(self, request):
        return deductions_csv(self._filtered())


class _EntrustDatesListViewSet(TaxErrorsMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """A read-only list of the tax system's requests the caller may see, filtered by their entrust date."""

    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, TaxRoles]
    selector = None  # staticmethod(selectors.reversal_list), ...

    def get_queryset(self):
        filters = EntrustDatesSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return self.selector(user=self.request.user, **filters.validated_data)


@extend_schema_view(list=extend_schema(
    summary="Reversal requests (1021) with their answers (2021), newest first", tags=TAGS, parameters=ENTRUST_DATES,
    responses={200: ReversalRequestSerializer(many=True), **ERRORS}))
class TaxReversalViewSet(_EntrustDatesListViewSet):
    queryset = TaxReversal.objects.none()
    serializer_class = ReversalRequestSerializer
    selector = staticmethod(selectors.reversal_list)


@extend_schema_view(list=extend_schema(
    summary="Stop-payment requests (1123) with their answers (2123), newest first", tags=TAGS,
    parameters=ENTRUST_DATES, responses={200: StopPaymentSerializer(many=True), **ERRORS}))
class StopPaymentViewSet(_EntrustDatesListViewSet):
    queryset = StopPaymentRequest.objects.none()
    serializer_class = StopPaymentSerializer
    selector = staticmethod(selectors.stop_payment_list)


@extend_schema_view(
    list=extend_schema(
        summary="Batch deduction packages (3102) the caller may see, newest first", tags=TAGS,
        parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=PackageState.values)],
        responses={200: DeductionPackageSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(summary="One package with its 2102 result status", tags=TAGS,
                           responses={200: DeductionPackageSerializer, **ERRORS}),
)
class DeductionPackageViewSet(TaxErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, TaxRoles]
    lookup_value_regex = r"\d+"
    queryset = DeductionPackage.objects.none()
    serializer_class = DeductionPackageSerializer

    def get_queryset(self):
        state = self.request.query_params.get("state", "") if self.action == "list" else ""
        if state and state not in PackageState.values:
            raise serializers.ValidationError({"state": [PACKAGE_STATE_HELP]})
        return selectors.package_list(user=self.request.user, state=state)

    def get_object(self) -> DeductionPackage:
        return selectors.package_get(user=self.request.user, package_id=self.kwargs["pk"])

    @extend_schema(summary="How far a package is: items per state, and whether its result was acknowledged",
                   tags=TAGS, responses={200: PackageProgressSerializer, **ERRORS})
    @action(detail=True, methods=["get"], pagination_class=None)
    def progress(self, request, pk=None):
        return Response(PackageProgressSerializer(package_progress_data(self.get_object())).data)


# ---------------------------------------------------------------------------------------------
# The daily entry report and own payments
# ---------------------------------------------------------------------------------------------


def _report_day(request):
    query = EntryReportQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data.get("day") or timezone.localdate()


REPORT_PARAMETERS = [OpenApiParameter("day", OpenApiTypes.DATE,
                                      description="the entry date (default: today, China Standard Time)")]


class EntryReportView(TaxErrorsMixin, APIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, TaxRoles]

    @extend_schema(summary="Treasury entries of a day by tax type and budget level, with central and local shares",
                   tags=TAGS, parameters=REPORT_PARAMETERS, responses={200: EntryReportSerializer, **ERRORS})
    def get(self, request):
        return Response(EntryReportSerializer(entry_report_data(user=request.user, day=_report_day(request))).data)


class EntryReportCsvView(TaxErrorsMixin, APIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, TaxRoles]

    @extend_schema(summary="The daily treasury entry report as CSV (UTF-8 with BOM)", tags=TAGS,
                   parameters=REPORT_PARAMETERS,
                   responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="CSV"), **ERRORS})
    def get(self, request):
        return entry_report_csv(user=request.user, day=_report_day(request))


class EntryReportPdfView(TaxErrorsMixin, APIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, TaxRoles]

    @extend_schema(summary="The daily treasury entry report as PDF (totals in figures and capitals)", tags=TAGS,
                   parameters=REPORT_PARAMETERS,
                   responses={(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="PDF"),
                              **ERRORS})
    def get(self, request):
        return entry_report_pdf(user=request.user, day=_report_day(request))


class OwnTaxPaymentView(TaxErrorsMixin, APIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, roles_permission(roles.TAX_STAFF)]

    @extend_schema(summary="An individual pays a tax voucher from a personal wallet, taken by tax staff of the "
                           "voucher's tax authority (idempotent on the voucher number)", tags=TAGS,
                   request=OwnTaxSerializer, responses={201: TaxDeductionSerializer, **OPERATOR_ERRORS})
    def post(self, request):
        data = OwnTaxSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        deduction = pay_own_tax(user=request.user, data=data.validated_data, now=timezone.now())
        return Response(TaxDeductionSerializer(deduction).data, status=status.HTTP_201_CREATED)


class MyTaxPaymentsView(TaxErrorsMixin, ListAPIView):
    """An individual's own taxes (self-service): what was paid from their wallets or under their agreements,
    and paying a voucher from one of their own wallets."""

    authentication_classes = API_AUTHENTICATION
    # An auditor who is also a person here reads their taxes and pays none (as for premiums).
    permission_classes = [roles_permission(roles.INDIVIDUAL), ReadOnlyForAuditors]
    serializer_class = TaxDeductionSerializer

    def get_queryset(self):
        return selectors.my_deductions(self.request.user)

    @extend_schema(summary="Your taxes: paid from your wallets or deducted under your agreements, newest first",
                   tags=TAGS, responses={200: TaxDeductionSerializer(many=True), **ERRORS})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(summary="Pay a tax voucher from one of your own personal wallets registered here (idempotent on "
                           "the voucher number)", tags=TAGS, request=MyTaxSerializer,
                   responses={201: TaxDeductionSerializer, **OPERATOR_ERRORS})
    def post(self, request):
        data = MyTaxSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        deduction = services.pay_my_tax(user=request.user, now=timezone.now(), **data.validated_data)
        return Response(TaxDeductionSerializer(deduction).data, status=status.HTTP_201_CREATED)


# ---------------------------------------------------------------------------------------------
# Refunds from the treasury (退库, 1104)
# ---------------------------------------------------------------------------------------------

REFUND_STATE_HELP = "refund order state: " + ", ".join(RefundOrderState.values)


class RefundSerializer(serializers.ModelSerializer):
    state = serializers.CharField(help_text="refund item state: " + ", ".join(RefundState.values))
    # A person's name, ID and wallet masked, as on the refund page (an organization's shown whole):
    # `to_representation`, one `shown_refund` a row.
    taxpayer_id = serializers.CharField(read_only=True)
    tax_pay_name = serializers.CharField(read_only=True)
    payee_acct = serializers.CharField(read_only=True)
    payee_name = serializers.CharField(read_only=True)

    class Meta:
        model = Refund
        fields = ["id", "tra_no", "draw_back_vou_no", "ori_tax_vou_no", "taxpayer_id", "tax_pay_name", "payee_acct",
                  "payee_name", "amount_fen", "bill_date", "budget_type", "budget_subject_code", "budget_level_code",
                  "state", "result_code", "add_word", "transfer", "decided_at"]

    def to_representation(self, obj: Refund) -> dict:
        return {**super().to_representation(obj), **shown_refund(obj)}


class RefundOrderSerializer(serializers.ModelSerializer):
    state = serializers.CharField(help_text=REFUND_STATE_HELP)

    class Meta:
        model = RefundOrder
        fields = ["id", "tax_org_code", "entrust_date", "pack_no", "all_num", "all_amount_fen", "state", "ack_result",
                  "reviewed_by", "reviewed_at", "approved_by", "approved_at", "rejected_by", "reject_reason",
                  "succ_num", "succ_amount_fen", "result_pending", "result_acknowledged", "result_attempts",
                  "result_error", "received_at", "done_at"]


class RefundOrderDetailSerializer(RefundOrderSerializer):
    refunds = serializers.SerializerMethodField()
    available_actions = serializers.SerializerMethodField()

    class Meta(RefundOrderSerializer.Meta):
        fields = RefundOrderSerializer.Meta.fields + ["refunds", "available_actions"]

    @extend_schema_field(RefundSerializer(many=True))
    def get_refunds(self, obj: RefundOrder) -> list[dict]:
        return RefundSerializer(obj.refunds.order_by("pk"), many=True).data

    def get_available_actions(self, obj: RefundOrder) -> list[str]:
        return refund_actions(user=self.context["request"].user, order=obj)


class MyRefundsView(TaxErrorsMixin, ListAPIView):
    """The tax refunds (退库) paid or to be paid into an individual's own wallets."""

    authentication_classes = API_AUTHENTICATION
    permission_classes = [roles_permission(roles.INDIVIDUAL)]
    serializer_class = RefundSerializer

    def get_queryset(self):
        return selectors.my_refunds(self.request.user)

    @extend_schema(summary="Your tax refunds, newest first", tags=TAGS,
                   responses={200: RefundSerializer(many=True), **ERRORS})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


@extend_schema_view(
    list=extend_schema(
        summary="Refund orders (1104) the caller may see, newest first", tags=TAGS,
        parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=RefundOrderState.values)],
        responses={200: RefundOrderSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(summary="One refund order with its items and their results", tags=TAGS,
                           responses={200: RefundOrderDetailSerializer, **ERRORS}),
)
class RefundOrderViewSet(TaxErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, TaxRoles]
    lookup_value_regex = r"\d+"
    queryset = RefundOrder.objects.none()

    def get_serializer_class(self):
        return RefundOrderSerializer if self.action == "list" else RefundOrderDetailSerializer

    def get_queryset(self):
        state = self.request.query_params.get("state", "") if self.action == "list" else ""
        if state and state not in RefundOrderState.values:
            raise serializers.ValidationError({"state": [REFUND_STATE_HELP]})
        qs = selectors.visible_refund_orders(self.request.user)
        return qs.filter(state=state) if state else qs

    def get_object(self) -> RefundOrder:
        return refund_order_get(user=self.request.user, order_id=self.kwargs["pk"])

    def _run(self, service, **extra) -> Response:
        order = self.get_object()  # 404 for another authority's order, before anything else
        service(order_id=order.pk, user=self.request.user, now=timezone.now(), **extra)
        fresh = refund_order_get(user=self.request.user, order_id=order.pk)
        return Response(RefundOrderDetailSerializer(fresh, context={"request": self.request}).data)

    @extend_schema(summary="Review a received refund order (the maker's step; the reviewer cannot approve it)",
                   tags=TAGS, request=None, responses={200: RefundOrderDetailSerializer, **ACTION_ERRORS})
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):
        return self._run(services.review_refund_order)

    @extend_schema(summary="Approve a reviewed refund order (another staff member than the reviewer); pays it",
                   tags=TAGS, request=None, responses={200: RefundOrderDetailSerializer, **ACTION_ERRORS})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._run(services.approve_refund_order)

    @extend_schema(summary="Reject a refund order not yet paid, with a reason", tags=TAGS,
                   request=TaxReasonSerializer, responses={200: RefundOrderDetailSerializer, **ACTION_ERRORS})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        self.get_object()
        data = TaxReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._run(services.reject_refund_order, reason=data.validated_data["reason"])
