"""REST API of flexible-employment premiums, under /api/v1/social/flexible/.

An individual (role `individual`, linked to a person) enrols, changes the base or frequency, sees the months
owed with their late fees, prices and pays them, lists their payments with receipts and downloads the
statement; tax staff read the enrolments their authority collects, auditors and administrators all of them.
Another person's enrolment or payment answers 404, like one that does not exist. Refusals answer
`{"code", "message"}`: 400 with the service's code, 403 (`individual_required`, `role_required`,
`read_only_role`), 404, 409 (`already_enrolled`), 503 when the operator cannot be asked.
"""
from __future__ import annotations

from django.http import HttpResponse
from django.utils import timezone
from django_fsm import ConcurrentTransition, TransitionNotAllowed
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from treasury.access import roles
from treasury.access.api_errors import ErrorSerializer, JsonErrorsMixin, api_exception_handler
from treasury.access.permissions import API_AUTHENTICATION, ReadOnlyForAuditors, roles_permission
from treasury.api_limits import IdField
from treasury.identifiers import mask_name, mask_resident_id, mask_wallet_id
from treasury.services.transfers import OperatorUnavailable

from . import selectors, services
from .models import Enrolment, Frequency, Payment, PaymentState, Period, PeriodState
from .statement import statement_pdf

TAGS = ["social insurance: flexible employment"]
ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
ACTION_ERRORS = {**ERRORS, 409: ErrorSerializer, 503: ErrorSerializer}
FORBIDDEN_CODES = {"individual_required"}
CONFLICT_CODES = {"already_enrolled"}

# Plain strings in the schema: enums here would clash with other apps' enum names.
FREQUENCY_HELP = "payment frequency: " + ", ".join(Frequency.values)
# Months one payment or quote may name: a century of them, far beyond any arrears; a longer list is refused.
MAX_PERIODS = 1200
LEVEL_HELP = "base level, percent of the local average wage: " + ", ".join(map(str, services.BASE_LEVELS))

FlexibleRoles = roles_permission(roles.INDIVIDUAL, *selectors.STAFF_ROLES)


def _error(code: str, message: str, http_status: int) -> Response:
    return Response({"code": code, "message": message}, status=http_status)


def flexible_exception_handler(exc, context):
    if isinstance(exc, services.FlexibleError):
        http_status = (status.HTTP_403_FORBIDDEN if exc.code in FORBIDDEN_CODES
                       else status.HTTP_409_CONFLICT if exc.code in CONFLICT_CODES else status.HTTP_400_BAD_REQUEST)
        return _error(exc.code, str(exc), http_status)
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        return _error("invalid_state", "状态已变化，请刷新后重试 (the state changed: reload and try again)",
                      status.HTTP_409_CONFLICT)
    if isinstance(exc, OperatorUnavailable):
        return _error("operator_unavailable", f"暂时无法联系运营机构 (the operator cannot be reached): {exc}",
                      status.HTTP_503_SERVICE_UNAVAILABLE)
    return api_exception_handler(exc, context)


class FlexibleErrorsMixin(JsonErrorsMixin):
    def get_exception_handler(self):
        return flexible_exception_handler


# ---------------------------------------------------------------------------------------------
# Serializers
# ---------------------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2])$", "example": "2026-09"})
class MonthField(serializers.DateField):
    """A month as YYYY-MM (the first day's date, written without its day): the schema says so, where a DateField
    promised a full date (format: date) the answers never carried."""

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m", **kwargs)


class BaseLevelSerializer(serializers.Serializer):
    level = serializers.IntegerField(help_text="percent of the local average wage")
    base_fen = serializers.IntegerField()
    note = serializers.CharField(help_text="the clamp note when the level falls outside floor..ceiling")


class PeriodSerializer(serializers.ModelSerializer):
    month = MonthField()
    overdue_days = serializers.SerializerMethodField()
    late_fee_today_fen = serializers.SerializerMethodField(help_text="the late fee if paid today (months not paid)")
    state = serializers.CharField(help_text="month state: " + ", ".join(PeriodState.values))

    class Meta:
        model = Period
        fields = ["id", "month", "base_level", "base_fen", "pension_fen", "pension_account_fen", "medical_fen",
                  "total_fen", "due_date", "state", "last_failure", "overdue_days", "late_fee_today_fen",
                  "late_fee_fen", "payment", "paid_at"]

    def _today(self, obj: Period) -> tuple[int, int]:
        if obj.state == "paid":
            return 0, 0
        return services.late_fee_for(period=obj, on=services.local_date(self.context["now"]))

    def get_overdue_days(self, obj: Period) -> int:
        return self._today(obj)[0]

    def get_late_fee_today_fen(self, obj: Period) -> int:
        return self._today(obj)[1]


class EnrolmentSerializer(serializers.ModelSerializer):
    person_name = serializers.SerializerMethodField()
    resident_id = serializers.SerializerMethodField()
    region = serializers.CharField(source="region.code")
    collecting_authority = serializers.CharField(source="collecting_authority.name")
    wallet_id = serializers.SerializerMethodField()
    frequency = serializers.CharField(help_text=FREQUENCY_HELP)

    class Meta:
        model = Enrolment
        fields = ["id", "person_name", "resident_id", "region", "collecting_authority", "wallet_id", "base_level",
                  "frequency", "start_month", "created_at", "changed_at"]

    def get_person_name(self, obj) -> str:
        return mask_name(obj.person.name)

    def get_resident_id(self, obj) -> str:
        return mask_resident_id(obj.person.resident_id)

    def get_wallet_id(self, obj) -> str:
        return mask_wallet_id(obj.wallet.wallet_id)


class StaffEnrolmentSerializer(EnrolmentSerializer):
    overdue_months = serializers.IntegerField(read_only=True)
    arrears_fen = serializers.SerializerMethodField()

    class Meta(EnrolmentSerializer.Meta):
        fields = EnrolmentSerializer.Meta.fields + ["overdue_months", "arrears_fen"]

    def get_arrears_fen(self, obj) -> int:
        return obj.arrears_fen or 0


class EnrolSerializer(serializers.Serializer):
    region = serializers.CharField(max_length=6, help_text="region code, e.g. 370100")
    base_level = serializers.IntegerField(help_text=LEVEL_HELP)
    frequency = serializers.CharField(help_text=FREQUENCY_HELP)
    wallet_id = serializers.CharField(max_length=16, help_text="the person's own personal wallet")
    start_month = serializers.DateField(help_text="the first day of the first month owed")


class ChangeSerializer(serializers.Serializer):
    base_level = serializers.IntegerField(help_text=LEVEL_HELP)
    frequency = serializers.CharField(help_text=FREQUENCY_HELP)


class PeriodIdsSerializer(serializers.Serializer):
    period_ids = serializers.ListField(child=IdField(), allow_empty=False, max_length=MAX_PERIODS,
                                       help_text="the oldest due months, in order")


class QuoteLineSerializer(serializers.Serializer):
    period = serializers.IntegerField(source="period.pk")
    month = MonthField(source="period.month")
    contribution_fen = serializers.IntegerField(source="period.total_fen")
    overdue_days = serializers.IntegerField()
    late_fee_fen = serializers.IntegerField()


class QuoteSerializer(serializers.Serializer):
    on = serializers.DateField(help_text="late fees are counted to this day")
    lines = QuoteLineSerializer(many=True)
    contributions_fen = serializers.IntegerField()
    late_fee_fen = serializers.IntegerField()
    amount_fen = serializers.IntegerField()


class PaymentSerializer(serializers.ModelSerializer):
    months = serializers.SerializerMethodField()
    transfer_state = serializers.CharField(source="transfer.state", default="")
    receipt_number = serializers.SerializerMethodField()
    receipt_url = serializers.SerializerMethodField()
    state = serializers.CharField(help_text="payment state: " + ", ".join(PaymentState.values))
    payment_no = serializers.CharField(read_only=True, help_text="the number the authority knows it by (5104 PayNo)")
    notified_at = serializers.DateTimeField(read_only=True, help_text="when the authority acknowledged the 5104 notice")
    reconciled_at = serializers.DateTimeField(read_only=True, help_text="when the day's reconciliation matched it")

    class Meta:
        model = Payment
        fields = ["id", "enrolment", "months", "contributions_fen", "late_fee_fen", "amount_fen", "state",
                  "failure_reason", "paid_on", "transfer", "transfer_state", "receipt_number", "receipt_url",
                  "created_at", "finished_at", "payment_no", "notified_at", "reconciled_at"]

    def get_months(self, obj) -> list[str]:
        return [f"{line.period.month:%Y-%m}" for line in obj.lines.select_related("period")]

    def _receipt(self, obj):
        return getattr(obj.transfer, "receipt", None) if obj.transfer_id else None

    def get_receipt_number(self, obj) -> str:
        receipt = self._receipt(obj)
        return receipt.number if receipt else ""

    def get_receipt_url(self, obj) -> str:
        from django.urls import reverse

        receipt = self._receipt(obj)
        return reverse("receipts:download", kwargs={"number": receipt.number}) if receipt else ""


# ---------------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------------


class BaseLevelsView(FlexibleErrorsMixin, APIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, FlexibleRoles]

    @extend_schema(summary="The base levels a person may choose in a region this month", tags=TAGS,
                   parameters=[OpenApiParameter("region", OpenApiTypes.STR, required=True)],
                   responses={200: BaseLevelSerializer(many=True), **ERRORS})
    def get(self, request):
        today = services.local_date(timezone.now())
        levels = services.base_levels(region=request.query_params.get("region", ""), on=today)
        return Response(BaseLevelSerializer(levels, many=True).data)


@extend_schema_view(
    list=extend_schema(
        summary="Enrolments the caller may see (an individual: their own; tax staff: their authority's, with "
                "arrears)", tags=TAGS,
        parameters=[OpenApiParameter("region", OpenApiTypes.STR), OpenApiParameter("q", OpenApiTypes.STR),
                    OpenApiParameter("arrears", OpenApiTypes.BOOL, description="only those with overdue months")],
        responses={200: StaffEnrolmentSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="One enrolment", tags=TAGS, responses={200: EnrolmentSerializer, **ERRORS}),
)
class EnrolmentViewSet(FlexibleErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, FlexibleRoles]
    lookup_value_regex = r"\d+"
    queryset = Enrolment.objects.none()  # for the schema; requests use get_queryset

    def get_serializer_class(self):
        return StaffEnrolmentSerializer if self.action == "list" else EnrolmentSerializer

    def get_queryset(self):
        params = self.request.query_params
        return selectors.staff_enrolments(user=self.request.user, today=services.local_date(timezone.now()),
                                          region=params.get("region", ""), search=params.get("q", ""),
                                          in_arrears=params.get("arrears") in ("1", "true"))

    def get_object(self) -> Enrolment:
        return selectors.enrolment_get(user=self.request.user, enrolment_id=self.kwargs["pk"])

    @extend_schema(summary="Enrol (the signed-in individual): the wallet is checked with the operator", tags=TAGS,
                   request=EnrolSerializer, responses={201: EnrolmentSerializer, **ACTION_ERRORS})
    def create(self, request):
        data = EnrolSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        enrolment = services.enrol(user=request.user, region_code=fields["region"], base_level=fields["base_level"],
                                   frequency=fields["frequency"], wallet_id=fields["wallet_id"],
                                   start_month=fields["start_month"], now=timezone.now())
        return Response(EnrolmentSerializer(enrolment).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Change the base level or frequency (from the next month due and not overdue)",
                   tags=TAGS, request=ChangeSerializer, responses={200: EnrolmentSerializer, **ACTION_ERRORS})
    @action(detail=True, methods=["post"])
    def change(self, request, pk=None):
        enrolment = self.get_object()
        data = ChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.change_base(user=request.user, enrolment_id=enrolment.pk, now=timezone.now(), **data.validated_data)
        return Response(EnrolmentSerializer(self.get_object()).data)

    @extend_schema(summary="The months made, with the late fee each would carry if paid today", tags=TAGS,
                   responses={200: PeriodSerializer(many=True), **ERRORS})
    @action(detail=True, methods=["get"], pagination_class=None)
    def periods(self, request, pk=None):
        enrolment = self.get_object()
        now = timezone.now()
        rows = enrolment.periods.select_related("enrolment__region").order_by("month")
        return Response(PeriodSerializer(rows, many=True, context={"now": now}).data)

    @extend_schema(summary="Price these months today: premiums, late fees, total (nothing is written)", tags=TAGS,
                   request=PeriodIdsSerializer, responses={200: QuoteSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def quote(self, request, pk=None):
        enrolment = self.get_object()
        data = PeriodIdsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        now = timezone.now()
        due = services.payable_periods(enrolment=enrolment, now=now)
        chosen = services.check_selection(enrolment, due, data.validated_data["period_ids"], now)
        return Response(QuoteSerializer(services.quote(periods=chosen, now=now)).data)

    @extend_schema(summary="Pay these months (the oldest due ones) with their late fees to today, in one "
                           "transfer; paying the same months again returns the same payment", tags=TAGS,
                   request=PeriodIdsSerializer, responses={201: PaymentSerializer, **ACTION_ERRORS})
    @action(detail=True, methods=["post"])
    def pay(self, request, pk=None):
        enrolment = self.get_object()
        data = PeriodIdsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        payment = services.pay(user=request.user, enrolment_id=enrolment.pk,
                               period_ids=data.validated_data["period_ids"], now=timezone.now())
        return Response(PaymentSerializer(payment).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="The statement of contribution history (PDF)", tags=TAGS,
                   responses={(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY), **ERRORS})
    @action(detail=True, methods=["get"])
    def statement(self, request, pk=None):
        enrolment = self.get_object()
        response = HttpResponse(statement_pdf(enrolment=enrolment, now=timezone.now()),
                                content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="statement-{enrolment.pk}.pdf"'
        return response


@extend_schema_view(
    list=extend_schema(summary="Payments the caller may see, newest first", tags=TAGS,
                       responses={200: PaymentSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="One payment with its months, transfer and receipt", tags=TAGS,
                           responses={200: PaymentSerializer, **ERRORS}),
)
class PaymentViewSet(FlexibleErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, FlexibleRoles]
    lookup_value_regex = r"\d+"
    serializer_class = PaymentSerializer
    queryset = Payment.objects.none()

    def get_queryset(self):
        return selectors.visible_payments(self.request.user)

    def get_object(self) -> Payment:
        return selectors.payment_get(user=self.request.user, payment_id=self.kwargs["pk"])
