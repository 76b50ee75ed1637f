"""REST API of fiscal disbursement: quotas (list, synchronise), payment requests (create with a payee
file, the workflow, lines, progress, attachments, returns, reconciliation, error report, voucher PDF)
and the daily report.

Querysets come from `fiscal_disbursement.selectors` (scoped: another bureau's request answers 404,
like one that does not exist; roles other than finance and audit get 403). Actions call one service
each; every refusal answers JSON `{"code", "message"}`: 403 for access (role, maker-checker,
auditors), 409 for a move the request's state does not allow, 400 for a refused file or request,
503/502 when the budget-management system cannot be asked or refuses, 503 `operator_unavailable` when the e-CNY
operator cannot be asked (checking a file's wallets, the payer account's balance).
"""
from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from django_fsm import ConcurrentTransition, TransitionNotAllowed
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from adapters.budget.interface import BudgetError, BudgetFault, BudgetUnavailable
from treasury.access.api_errors import ErrorSerializer, JsonErrorsMixin, api_exception_handler
from treasury.access.errors import AccessDenied
from treasury.access.permissions import API_AUTHENTICATION, ReadOnlyForAuditors, roles_permission
from treasury.api import ConditionsSerializer
from treasury.api_limits import IdField
from treasury.business_days import BusinessDaySerializerField
from treasury.identifiers import mask_name, mask_resident_id, mask_wallet_id
from treasury.money import fen_to_yuan_str
from treasury.services.transfers import OperatorUnavailable

from . import selectors, services
from .forms import ConditionsFields
from .models import PayeeKind, PaymentLine, PaymentRequest, Quota, RequestAttachment
from .models import RequestState as R
from .payees import PayeeFileRefused
from .views import FILE_TYPES, progress_data

# Plain strings in the schema: enums here would clash with other apps' enum names.
STATE_HELP = "request state: " + ", ".join(R.values)
LINE_STATE_HELP = ("returned_line, not_paid, or the state of the line's current transfer (pending, submitted, "
                   "unknown, settled, failed, cancelled, ...)")
# Refusals that are about the request's state rather than the request itself.
CONFLICT_CODES = {"not_draft", "not_editable", "not_finished", "not_reported", "quota_insufficient",
                  "payees_not_ready"}

FinanceRoles = roles_permission(*selectors.READ_ROLES)


def _error(code: str, message: str, http_status: int) -> Response:
    return Response({"code": code, "message": message}, status=http_status)


def fiscal_exception_handler(exc, context):
    """Fiscal refusals as `{"code", "message"}`; everything else as the project's API errors."""
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        return _error("invalid_state", "申请当前状态不允许此操作 (the request's state does not allow this)",
                      status.HTTP_409_CONFLICT)
    if isinstance(exc, AccessDenied) and exc.code == "not_found":
        return _error("not_found", str(exc), status.HTTP_404_NOT_FOUND)
    if isinstance(exc, services.DisbursementError):
        http_status = status.HTTP_409_CONFLICT if exc.code in CONFLICT_CODES else status.HTTP_400_BAD_REQUEST
        return _error(exc.code, str(exc), http_status)
    if isinstance(exc, BudgetUnavailable):
        return _error("budget_unavailable", f"预算管理一体化系统暂时无法访问 (the budget-management system cannot be "
                                            f"reached): {exc}", status.HTTP_503_SERVICE_UNAVAILABLE)
    if isinstance(exc, BudgetError):
        return _error("budget_fault" if isinstance(exc, BudgetFault) else "budget_error",
                      f"预算管理一体化系统拒绝了请求 (the budget-management system refused): {exc}",
                      status.HTTP_502_BAD_GATEWAY)
    if isinstance(exc, PayeeFileRefused):
        return _error(getattr(exc, "code", "") or "file_refused", str(exc), status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, OperatorUnavailable):
        return _error("operator_unavailable", f"暂时无法联系运营机构，未做任何记录，请稍后再试 (the e-CNY operator cannot be "
                                              f"reached; nothing was recorded, try again later): {exc}",
                      status.HTTP_503_SERVICE_UNAVAILABLE)
    return api_exception_handler(exc, context)


class FiscalErrorsMixin(JsonErrorsMixin):
    def get_exception_handler(self):
        return fiscal_exception_handler


# ---------------------------------------------------------------------------------------------
# Serializers
# ---------------------------------------------------------------------------------------------


class QuotaSerializer(serializers.ModelSerializer):
    agency_id = serializers.IntegerField(read_only=True, allow_null=True)
    available_fen = serializers.IntegerField(read_only=True, help_text="amount - reserved - consumed (here)")

    class Meta:
        model = Quota
        fields = ["id", "quota_id", "adm_div_code", "fiscal_year", "agency_id", "agency_code", "agency_name",
                  "exp_func_code", "exp_eco_code", "fund_type_code", "pay_type_code", "purpose", "amount_fen",
                  "reserved_fen", "consumed_fen", "available_fen", "budget_used_fen", "budget_reserved_fen",
                  "synced_at"]
        read_only_fields = fields


class QuotaSyncSerializer(serializers.Serializer):
    fiscal_year = serializers.IntegerField(required=False, min_value=2000, max_value=2100)
    agency_code = serializers.CharField(required=False, allow_blank=True, max_length=20)


class QuotaSyncResultSerializer(serializers.Serializer):
    received = serializers.IntegerField(help_text="quotas the budget system returned (created or updated here)")


class FiscalProblemSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="line number as the clerk sees it in the file (0: the file as a whole)")
    column = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class AttachmentSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.CharField(source="uploaded_by.username", read_only=True)

    class Meta:
        model = RequestAttachment
        fields = ["id", "filename", "sha256", "size", "uploaded_by", "uploaded_at"]
        read_only_fields = fields


class PaymentRequestSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text=STATE_HELP)
    pay_type = serializers.CharField(read_only=True, help_text="1 direct payment, 2 authorised payment")
    organization = serializers.CharField(source="organization.name", read_only=True)
    quota_id = serializers.CharField(source="quota.quota_id", read_only=True)
    bill_no = serializers.CharField(read_only=True, help_text="the payment application number (BillNo)")
    batch_ref = serializers.CharField(read_only=True, help_text="the transfers' batch and the trace stream")
    conditions = ConditionsSerializer(read_only=True, allow_null=True)
    prepared_by = serializers.CharField(source="prepared_by.username", read_only=True)
    first_approved_by = serializers.CharField(source="first_approved_by.username", read_only=True, allow_null=True,
                                              default=None)
    approved_by = serializers.CharField(source="approved_by.username", read_only=True, allow_null=True, default=None)
    total_yuan = serializers.SerializerMethodField(help_text="total in yuan as a decimal string")
    needs_second_approval = serializers.SerializerMethodField(help_text="the total needs two approvers")

    class Meta:
        model = PaymentRequest
        fields = [
            "id", "bill_no", "batch_ref", "organization", "quota_id", "pay_type", "title", "purpose_code",
            "exp_func_code", "exp_eco_code", "conditions", "filename", "line_count", "total_fen", "total_yuan",
            "problem_count", "paid_count", "paid_fen", "returned_count", "returned_fen", "state", "prepared_by",
            "needs_second_approval", "first_approved_by", "approved_by", "reason", "voucher_no", "voucher_error",
            "reconcile_note", "created_at", "submitted_at", "first_approved_at", "approved_at", "voucher_issued_at",
            "finished_at", "reported_at", "reconciled_at",
        ]
        read_only_fields = fields

    def get_total_yuan(self, obj: PaymentRequest) -> str:
        return fen_to_yuan_str(obj.total_fen)

    def get_needs_second_approval(self, obj: PaymentRequest) -> bool:
        return services.needs_second_approval(obj)


class PaymentRequestDetailSerializer(PaymentRequestSerializer):
    problems = FiscalProblemSerializer(many=True, read_only=True)
    attachments = AttachmentSerializer(many=True, read_only=True)
    available_actions = serializers.SerializerMethodField(help_text="the actions the caller may take now")

    class Meta(PaymentRequestSerializer.Meta):
        fields = PaymentRequestSerializer.Meta.fields + ["problems", "attachments", "available_actions"]
        read_only_fields = fields

    def get_available_actions(self, obj: PaymentRequest) -> list[str]:
        return list(selectors.request_actions(user=self.context["request"].user, request=obj).available)


class PaymentLineSerializer(serializers.ModelSerializer):
    """A line as a list shows it: a person's name, ID number and every wallet id masked."""

    id_kind = serializers.CharField(read_only=True, help_text="resident (a person) or uscc (an organization)")
    payee_name = serializers.SerializerMethodField()
    id_number = serializers.SerializerMethodField()
    wallet_id = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField(help_text=LINE_STATE_HELP)
    refusal = serializers.SerializerMethodField(help_text="the operator's refusal of the current payment, if any")
    transfer_id = serializers.IntegerField(read_only=True, allow_null=True)
    receipt_number = serializers.SerializerMethodField(help_text="the signed receipt of a settled line")

    class Meta:
        model = PaymentLine
        fields = ["id", "line_no", "payee_name", "id_kind", "id_number", "wallet_id", "amount_fen", "memo", "warnings",
                  "attempts", "returned", "return_reason", "report_no", "state", "refusal", "transfer_id",
                  "receipt_number"]
        read_only_fields = fields

    def get_payee_name(self, obj: PaymentLine) -> str:
        return mask_name(obj.payee_name) if obj.id_kind == PayeeKind.PERSON else obj.payee_name

    def get_id_number(self, obj: PaymentLine) -> str:
        return mask_resident_id(obj.id_number) if obj.id_kind == PayeeKind.PERSON else obj.id_number

    def get_wallet_id(self, obj: PaymentLine) -> str:
        return mask_wallet_id(obj.wallet_id)

    def get_state(self, obj: PaymentLine) -> str:
        return selectors.line_state(obj)

    def get_refusal(self, obj: PaymentLine) -> str:
        return selectors.line_refusal(obj)

    def get_receipt_number(self, obj: PaymentLine) -> str:
        return selectors.settled_receipt_number(obj)


class FiscalProgressSerializer(serializers.Serializer):
    state = serializers.CharField(help_text=STATE_HELP)
    finished = serializers.BooleanField(help_text="the request is no longer paying")
    total = serializers.IntegerField(required=False)
    paid = serializers.IntegerField(required=False)
    paid_fen = serializers.IntegerField(required=False)
    failed = serializers.IntegerField(
        required=False, help_text="lines refused, or whose money came back, not yet retried or returned")
    open = serializers.IntegerField(required=False, help_text="lines being paid")
    returned = serializers.IntegerField(required=False)
    returned_fen = serializers.IntegerField(required=False)
    percent = serializers.IntegerField(required=False)
    done = serializers.BooleanField(required=False, help_text="no line is still being paid")


class RequestCreateSerializer(serializers.Serializer):
    quota_id = serializers.CharField(max_length=40, help_text="the budget system's quota id (指标编号)")
    pay_type = serializers.ChoiceField(choices=["1", "2"], help_text="1 direct payment, 2 authorised payment")
    title = serializers.CharField(max_length=140, help_text="purpose (摘要)")
    purpose_code = serializers.CharField(max_length=16, required=False, default="SUBSIDY")
    exp_eco_code = serializers.CharField(max_length=10, required=False, allow_blank=True, default="")
    payee_category = serializers.CharField(required=False, allow_blank=True, default="",
                                           help_text="earmark: WT01 personal or WT09 corporate wallets only")
    allowed_purposes = serializers.CharField(required=False, allow_blank=True, default="",
                                             help_text="earmark: purpose codes, comma-separated")
    allowed_payees = serializers.CharField(required=False, allow_blank=True, default="",
                                           help_text="earmark: payee wallet ids, comma- or newline-separated")
    spend_by_date = serializers.DateField(required=False, allow_null=True, default=None,
                                          help_text="earmark: payments are refused after this day")
    file = serializers.FileField(required=False, help_text="the payee file, CSV (UTF-8 or GBK) or XLSX")


class PayeeFileSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="the payee file, CSV (UTF-8 or GBK) or XLSX")


class AttachmentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="a supporting document (at most 20 MB)")


class FiscalReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


class FiscalLineIdsSerializer(serializers.Serializer):
    line_ids = serializers.ListField(child=IdField(), min_length=1, max_length=10_000,
                                     help_text="ids of refused lines of this request")


class FiscalReturnLinesSerializer(FiscalLineIdsSerializer):
    reason = serializers.CharField(max_length=255, help_text="why these lines are given up (退回)")


class RequestFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=R.values, required=False)
    quota = serializers.CharField(required=False, max_length=40)
    q = serializers.CharField(required=False, max_length=100)


class QuotaFilterSerializer(serializers.Serializer):
    fiscal_year = serializers.IntegerField(required=False, min_value=2000, max_value=2100)
    agency = serializers.CharField(required=False, max_length=100)
    classification = serializers.CharField(required=False, max_length=10)
    q = serializers.CharField(required=False, max_length=100)


class ClassificationTotalSerializer(serializers.Serializer):
    exp_func_code = serializers.CharField()
    exp_eco_code = serializers.CharField()
    fund_type_code = serializers.CharField()
    paid_count = serializers.IntegerField()
    paid_fen = serializers.IntegerField()
    returned_count = serializers.IntegerField()
    returned_fen = serializers.IntegerField()


class DailyReportSerializer(serializers.Serializer):
    organization_id = serializers.IntegerField()
    organization_name = serializers.CharField()
    day = serializers.DateField()
    paid_count = serializers.IntegerField()
    paid_fen = serializers.IntegerField()
    returned_count = serializers.IntegerField()
    returned_fen = serializers.IntegerField()
    rows = ClassificationTotalSerializer(many=True)
    pdf_url = serializers.CharField()


class DailyReportQuerySerializer(serializers.Serializer):
    day = BusinessDaySerializerField(required=False)
    organization = IdField(required=False)


ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
# ?fmt=csv answers CSV, ?fmt=xlsx a workbook: both declared, so a client (and the schema check) expects either.
SPREADSHEET_RESPONSES = {
    (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="CSV (fmt=csv)"),
    (200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"): OpenApiResponse(
        OpenApiTypes.BINARY, description="XLSX workbook (fmt=xlsx)"),
}
ACTION_ERRORS = {**ERRORS, 409: ErrorSerializer}
BUDGET_ERRORS = {**ACTION_ERRORS, 502: ErrorSerializer, 503: ErrorSerializer}
OPERATOR_ERRORS = {**ACTION_ERRORS, 503: ErrorSerializer}  # the e-CNY operator could not be asked
TAGS = ["fiscal disbursement"]
PDF = OpenApiResponse(OpenApiTypes.BINARY, description="PDF document")


# ---------------------------------------------------------------------------------------------
# Quotas
# ---------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="Budget quotas (指标) with this service's reservations and the budget system's figures", tags=TAGS,
        parameters=[
            OpenApiParameter("fiscal_year", OpenApiTypes.INT, description="only this fiscal year"),
            OpenApiParameter("agency", OpenApiTypes.STR, description="budget unit code or part of its name"),
            OpenApiParameter("classification", OpenApiTypes.STR,
                             description="functional or economic classification code (prefix)"),
            OpenApiParameter("q", OpenApiTypes.STR, description="quota id, purpose or budget unit"),
        ],
        responses={200: QuotaSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(summary="One budget quota", tags=TAGS, responses={200: QuotaSerializer, **ERRORS}),
)
class QuotaViewSet(FiscalErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, FinanceRoles]
    lookup_value_regex = r"\d+"
    queryset = Quota.objects.none()  # for the schema; requests use get_queryset
    serializer_class = QuotaSerializer

    def get_queryset(self):
        if self.action == "list":
            filters = QuotaFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            data = filters.validated_data
            return selectors.quota_list(user=self.request.user, fiscal_year=data.get("fiscal_year"),
                                        agency=data.get("agency", ""), classification=data.get("classification", ""),
                                        search=data.get("q", ""))
        return selectors.visible_quotas(self.request.user)

    def get_object(self) -> Quota:
        return selectors.quota_get(user=self.request.user, quota_id=self.kwargs["pk"])

    @extend_schema(summary="Synchronise quotas from the budget-management system now", tags=TAGS,
                   request=QuotaSyncSerializer, responses={200: QuotaSyncResultSerializer, **BUDGET_ERRORS})
    @action(detail=False, methods=["post"], pagination_class=None)
    def sync(self, request):
        if not selectors.may_sync_quotas(request.user):
            raise AccessDenied("只有财政经办人员可以同步指标 (only finance clerks synchronise quotas)", code="role_required")
        data = QuotaSyncSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        received = services.sync_quotas(now=timezone.now(), agency_code=data.validated_data.get("agency_code", ""),
                                        fiscal_year=data.validated_data.get("fiscal_year"))
        return Response(QuotaSyncResultSerializer({"received": received}).data)


# ---------------------------------------------------------------------------------------------
# Payment requests
# ---------------------------------------------------------------------------------------------


def _action_schema(summary: str, request=None, errors=ACTION_ERRORS):
    return extend_schema(summary=summary, tags=TAGS, request=request,
                         responses={200: PaymentRequestDetailSerializer, **errors})


def _conditions(data: dict):
    """Earmark conditions from the API's fields, checked like the page's form.

    Raises:
        ValidationError: a field is not a valid condition.
    """
    form = ConditionsFields(data={
        "payee_category": data.get("payee_category", ""), "allowed_purposes": data.get("allowed_purposes", ""),
        "allowed_payees": data.get("allowed_payees", ""),
        "spend_by_date": data["spend_by_date"].isoformat() if data.get("spend_by_date") else "",
    })
    if not form.is_valid():
        raise serializers.ValidationError({name: [str(e) for e in errors] for name, errors in form.errors.items()})
    conditions = form.conditions()
    if conditions and conditions.purposes and data.get("purpose_code", "SUBSIDY") not in conditions.purposes:
        raise serializers.ValidationError({"allowed_purposes": [
            "申请的用途代码不在允许范围内 (the request's purpose code is not among the allowed purposes)"]})
    return conditions


@extend_schema_view(
    list=extend_schema(
        summary="Payment requests the caller may see, newest first", tags=TAGS,
        parameters=[
            OpenApiParameter("state", OpenApiTypes.STR, enum=R.values, description="only requests in this state"),
            OpenApiParameter("quota", OpenApiTypes.STR, description="only requests against this quota id"),
            OpenApiParameter("q", OpenApiTypes.STR, description="purpose, voucher number or file name"),
        ],
        responses={200: PaymentRequestSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(summary="One payment request with its file problems and attachments", tags=TAGS,
                           responses={200: PaymentRequestDetailSerializer, **ERRORS}),
)
class PaymentRequestViewSet(FiscalErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, FinanceRoles]
    lookup_value_regex = r"\d+"
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    queryset = PaymentRequest.objects.none()  # for the schema; requests use get_queryset

    def get_serializer_class(self):
        return PaymentRequestSerializer if self.action == "list" else PaymentRequestDetailSerializer

    def get_queryset(self):
        if self.action == "list":
            filters = RequestFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            data = filters.validated_data
            return selectors.request_list(user=self.request.user, state=data.get("state", ""),
                                          quota=data.get("quota", ""), search=data.get("q", ""))
        return selectors.request_list(user=self.request.user)

    def get_object(self) -> PaymentRequest:
        return selectors.request_get(user=self.request.user, request_id=self.kwargs["pk"])

    def _detail(self, request_id: int, http_status=status.HTTP_200_OK) -> Response:
        fresh = selectors.request_get(user=self.request.user, request_id=request_id)
        return Response(PaymentRequestDetailSerializer(fresh, context={"request": self.request}).data,
                        status=http_status)

    # --- creating and preparing ---------------------------------------------------------------

    @extend_schema(summary="A new draft request against a quota, with its payee file (every line checked)",
                   tags=TAGS, request={"multipart/form-data": RequestCreateSerializer},
                   responses={201: PaymentRequestDetailSerializer, **OPERATOR_ERRORS})
    def create(self, request):
        data = RequestCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        conditions = _conditions(fields)
        uploaded = fields.get("file")
        # One transaction: an answer other than 201 leaves no draft behind. A file that is not a payee spreadsheet
        # at all (400) or wallets the operator cannot be asked about now (503) used to leave a draft the answer
        # did not name, and each retry another. (A file with problems by line is a 201: the draft holds them.)
        with transaction.atomic():
            created = services.create_request(
                user=request.user, quota_id=fields["quota_id"], pay_type=fields["pay_type"], title=fields["title"],
                now=timezone.now(), purpose_code=fields["purpose_code"], exp_eco_code=fields["exp_eco_code"],
                conditions=conditions,
            )
            if uploaded:
                services.load_payee_file(request_id=created.pk, user=request.user, filename=uploaded.name,
                                         data=uploaded.read(), now=timezone.now())
        return self._detail(created.pk, status.HTTP_201_CREATED)

    @_action_schema("Replace a draft's payees with a (corrected) payee file", request={
        "multipart/form-data": PayeeFileSerializer}, errors=OPERATOR_ERRORS)
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def payees(self, request, pk=None):
        payment_request = self.get_object()
        data = PayeeFileSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        uploaded = data.validated_data["file"]
        services.load_payee_file(request_id=payment_request.pk, user=request.user, filename=uploaded.name,
                                 data=uploaded.read(), now=timezone.now())
        return self._detail(payment_request.pk)

    @extend_schema(summary="Attach a supporting document (before approval)", tags=TAGS,
                   request={"multipart/form-data": AttachmentUploadSerializer},
                   responses={201: AttachmentSerializer, **ACTION_ERRORS})
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def attachments(self, request, pk=None):
        payment_request = self.get_object()
        data = AttachmentUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        uploaded = data.validated_data["file"]
        attachment = services.add_attachment(request_id=payment_request.pk, user=request.user,
                                             filename=uploaded.name, data=uploaded.read(), now=timezone.now())
        return Response(AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)

    # --- reading ----------------------------------------------------------------------------------

    @extend_schema(
        summary="The lines of a request (a person's name and ID number and every wallet id masked)", tags=TAGS,
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=list(selectors.LINE_FILTERS), default="all",
                                     description="all, paid, failed, returned or open")],
        responses={200: PaymentLineSerializer(many=True), **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def lines(self, request, pk=None):
        payment_request = self.get_object()
        wanted = request.query_params.get("status", "all")
        if wanted not in selectors.LINE_FILTERS:
            return _error("invalid", "status: " + ", ".join(selectors.LINE_FILTERS), status.HTTP_400_BAD_REQUEST)
        page = self.paginate_queryset(selectors.request_lines(request=payment_request, status=wanted))
        return self.get_paginated_response(PaymentLineSerializer(page, many=True).data)

    @extend_schema(summary="Payment progress by line; a finished run moves the request on at once", tags=TAGS,
                   responses={200: FiscalProgressSerializer, **ERRORS})
    @action(detail=True, methods=["get"], pagination_class=None)
    def progress(self, request, pk=None):
        payment_request = self.get_object()
        if payment_request.state == R.PAYING:
            services.finish_request_if_done(request_id=payment_request.pk, now=timezone.now())
            payment_request.refresh_from_db()
        return Response(FiscalProgressSerializer(progress_data(payment_request)).data)

    @extend_schema(
        summary="The error report: the uploaded payee file with an error column", tags=TAGS,
        parameters=[OpenApiParameter("fmt", OpenApiTypes.STR, enum=list(FILE_TYPES), default="csv",
                                     description="csv or xlsx")],
        responses={**SPREADSHEET_RESPONSES, **ERRORS},
    )
    @action(detail=True, methods=["get"], url_path="error-report", url_name="error-report", pagination_class=None)
    def error_report(self, request, pk=None):
        payment_request = self.get_object()
        fmt = request.query_params.get("fmt", "csv")
        if fmt not in FILE_TYPES:
            return _error("invalid", "fmt must be csv or xlsx", status.HTTP_400_BAD_REQUEST)
        if not payment_request.upload_path or not payment_request.problems:
            return _error("no_error_report", "没有错误报告 (the payee file has no problems)", status.HTTP_404_NOT_FOUND)
        response = HttpResponse(services.error_report(request=payment_request, fmt=fmt), content_type=FILE_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="fiscal-{payment_request.pk}-errors.{fmt}"'
        return response

    @extend_schema(summary="The payment voucher as PDF (once approved)", tags=TAGS,
                   responses={(200, "application/pdf"): PDF, **ERRORS})
    @action(detail=True, methods=["get"], url_path="voucher-pdf", url_name="voucher-pdf", pagination_class=None)
    def voucher_pdf(self, request, pk=None):
        from . import documents

        payment_request = self.get_object()
        if not payment_request.voucher_no:
            return _error("no_voucher", "审批后才有支付凭证 (the voucher exists once the request is approved)",
                          status.HTTP_404_NOT_FOUND)
        response = HttpResponse(documents.render_voucher_pdf(request=payment_request), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="voucher-{payment_request.voucher_no}.pdf"'
        return response

    # --- the workflow ---------------------------------------------------------------------------

    def _run(self, service, **extra) -> Response:
        payment_request = self.get_object()  # 404 for another bureau's request, before anything else
        service(request_id=payment_request.pk, user=self.request.user, now=timezone.now(), **extra)
        return self._detail(payment_request.pk)

    @_action_schema("Submit a draft whose payee file has no problems")
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        return self._run(services.submit_request)

    @_action_schema("Approve (maker-checker; above the second-approval amount the first approval is recorded and "
                    "a second approver completes it); the voucher is then sent and paying starts",
                    errors=BUDGET_ERRORS)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        self._run(services.approve_request)
        # With Celery eager the voucher went out and paying ran at commit: close the run now if it is done.
        services.finish_request_if_done(request_id=int(pk), now=timezone.now())
        return self._detail(int(pk))

    @_action_schema("Send a submitted request back to its preparer, with a reason", request=FiscalReasonSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        data = FiscalReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._run(services.reject_request, reason=data.validated_data["reason"])

    @_action_schema("Make a rejected request a draft again")
    @action(detail=True, methods=["post"])
    def rework(self, request, pk=None):
        return self._run(services.rework_request)

    @_action_schema("Cancel before paying starts, with a reason (the quota reservation is released; an approved "
                    "request's voucher is first asked about at the budget system)",
                    request=FiscalReasonSerializer, errors=BUDGET_ERRORS)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        data = FiscalReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._run(services.cancel_request, reason=data.validated_data["reason"])

    @_action_schema("Pay refused lines again to the same wallet (each gets a new payment attempt)",
                    request=FiscalLineIdsSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        data = FiscalLineIdsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        self._run(services.retry_lines, line_ids=data.validated_data["line_ids"])
        services.finish_request_if_done(request_id=int(pk), now=timezone.now())
        return self._detail(int(pk))

    @_action_schema("Confirm refused lines as returned (退回) with a reason: released on the quota and reported",
                    request=FiscalReturnLinesSerializer)
    @action(detail=True, methods=["post"], url_path="return", url_name="return")
    def return_lines(self, request, pk=None):
        data = FiscalReturnLinesSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._run(services.return_lines, line_ids=data.validated_data["line_ids"],
                         reason=data.validated_data["reason"])

    @_action_schema("Send an approved request's voucher again now (same voucher number; the periodic task "
                    "does it too)", errors=BUDGET_ERRORS)
    @action(detail=True, methods=["post"], url_path="resend-voucher", url_name="resend-voucher")
    def resend_voucher(self, request, pk=None):
        payment_request = self.get_object()
        if selectors.RESEND_VOUCHER not in selectors.request_actions(user=request.user,
                                                                     request=payment_request).available:
            if payment_request.state != R.APPROVED:
                raise TransitionNotAllowed("not approved")
            raise AccessDenied("只有本局财政人员可以重发凭证 (only the bureau's finance users send a voucher again)",
                               code="role_required")
        services.send_voucher(request_id=payment_request.pk, now=timezone.now())
        services.finish_request_if_done(request_id=payment_request.pk, now=timezone.now())
        return self._detail(payment_request.pk)

    @_action_schema("Start paying an accepted voucher (after the payer account was short of the total)",
                    errors=OPERATOR_ERRORS)
    @action(detail=True, methods=["post"])
    def pay(self, request, pk=None):
        return self._run(services.start_paying)

    @_action_schema("Reconcile a reported request with the budget system's figures for its voucher",
                    errors=BUDGET_ERRORS)
    @action(detail=True, methods=["post"])
    def reconcile(self, request, pk=None):
        return self._run(services.reconcile_request)


# ---------------------------------------------------------------------------------------------
# The daily report
# ---------------------------------------------------------------------------------------------


def _report_target(request) -> tuple[dt.date, object]:
    query = DailyReportQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    day = query.validated_data.get("day") or timezone.localdate()
    organization = selectors.report_organization(user=request.user,
                                                 organization_id=query.validated_data.get("organization"))
    return day, organization


REPORT_PARAMETERS = [
    OpenApiParameter("day", OpenApiTypes.DATE, description="the business day (default: today, China Standard Time)"),
    OpenApiParameter("organization", OpenApiTypes.INT,
                     description="finance bureau id (auditors and administrators; default: the caller's own)"),
]


class DailyReportView(FiscalErrorsMixin, APIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, FinanceRoles]

    @extend_schema(summary="What a bureau paid and had returned on a day, by functional and economic "
                           "classification and fund nature", tags=TAGS, parameters=REPORT_PARAMETERS,
                   responses={200: DailyReportSerializer, **ERRORS})
    def get(self, request):
        from . import documents

        day, organization = _report_target(request)
        report = documents.daily_report(organization=organization, day=day)
        pdf_url = f"{reverse('api-fiscal-daily-report-pdf')}?day={day.isoformat()}&organization={organization.pk}"
        return Response(DailyReportSerializer({
            "organization_id": organization.pk, "organization_name": report.organization_name, "day": day,
            "paid_count": report.paid_count, "paid_fen": report.paid_fen, "returned_count": report.returned_count,
            "returned_fen": report.returned_fen, "rows": report.rows, "pdf_url": pdf_url,
        }).data)


class DailyReportPdfView(FiscalErrorsMixin, APIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, FinanceRoles]

    @extend_schema(summary="The daily disbursement report as PDF", tags=TAGS, parameters=REPORT_PARAMETERS,
                   responses={(200, "application/pdf"): PDF, **ERRORS})
    def get(self, request):
        from . import documents

        day, organization = _report_target(request)
        response = HttpResponse(documents.render_daily_report_pdf(organization=organization, day=day),
                                content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="fiscal-daily-{day:%Y%m%d}.pdf"'
        return response


