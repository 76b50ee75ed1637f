"""REST API of tax reconciliation: runs (list, detail with totals per outcome, run now), a run's result
rows (filtered by outcome, paginated, personal data masked), discrepancy cases (list, detail, investigate,
resolve with a reason). Scoped like the pages; auditors and administrators read, tax staff act. Refusals
answer `{"code", "message"}` (403 access, 409 state, 400 request, 503 operator unavailable)."""
from __future__ import annotations

from django.utils import timezone
from django_fsm import ConcurrentTransition, TransitionNotAllowed
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from tax.api import ACTION_ERRORS, ERRORS, TaxErrorsMixin, TaxRoles, _error, tax_exception_handler
from tax.services import MAX_AMOUNT_FEN
from treasury.access.permissions import API_AUTHENTICATION, ReadOnlyForAuditors
from treasury.api_limits import IdField
from treasury.business_days import BusinessDaySerializerField
from treasury.services.transfers import OperatorRejected

from . import corrections, selectors, services
from .case_api import (
    CaseActionsMixin, CorrectionSerializerBase, case_action_schemas, choice, day_param,
)
from .models import (
    CaseCorrection, CaseState, CorrectionKind, DiscrepancyCase, Outcome, ReconciliationResult, ReconciliationRun,
)
from .views import acts, describe_results, staff_tax_org_code

TAGS = ["tax reconciliation"]
OUTCOME_HELP = "outcome: " + ", ".join(Outcome.values)
CASE_STATE_HELP = "case state: " + ", ".join(CaseState.values)


def reconciliation_exception_handler(exc, context):
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        return _error("invalid_state", "差异当前状态不允许此操作 (the case's state does not allow this)",
                      status.HTTP_409_CONFLICT)
    if isinstance(exc, services.ReconciliationError):
        # A refusal about the case's state (resolved meanwhile) is a conflict, like a move the state does not allow.
        conflict = exc.code == "invalid_state"
        return _error(exc.code, str(exc), status.HTTP_409_CONFLICT if conflict else status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, OperatorRejected):
        return _error("operator_rejected", str(exc), status.HTTP_503_SERVICE_UNAVAILABLE)
    return tax_exception_handler(exc, context)


class ReconciliationErrorsMixin(TaxErrorsMixin):
    def get_exception_handler(self):
        return reconciliation_exception_handler

    def ensure_acts(self):
        if not acts(self.request.user):
            raise PermissionDenied("仅税务人员可操作 (only tax staff act on reconciliation)")


class OutcomeTotalSerializer(serializers.Serializer):
    outcome = serializers.CharField(help_text=OUTCOME_HELP)
    label = serializers.CharField()
    count = serializers.IntegerField()
    tax_fen = serializers.IntegerField()
    ours_fen = serializers.IntegerField()
    operator_fen = serializers.IntegerField()


class RunTotalsSerializer(serializers.Serializer):
    outcomes = OutcomeTotalSerializer(many=True)
    count = serializers.IntegerField()
    discrepancies = serializers.IntegerField()
    tax_fen = serializers.IntegerField()
    ours_fen = serializers.IntegerField()
    operator_fen = serializers.IntegerField()


class ReconciliationRunSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text="waiting or done")
    totals = serializers.SerializerMethodField(help_text="over the results the caller may see")

    class Meta:
        model = ReconciliationRun
        fields = ["id", "check_date", "tax_org_code", "state", "runs", "note", "reply_result", "reply_sent_at",
                  "started_at", "finished_at", "step", "step_at", "requested_by", "requested_at", "failure", "totals"]
        extra_kwargs = {"step": {"help_text": "queued, fetching or matching while a run works; empty otherwise"},
                        "failure": {"help_text": "why the last attempt stopped early; empty after a finished run"}}

    @extend_schema_field(RunTotalsSerializer)
    def get_totals(self, obj: ReconciliationRun) -> dict:
        totals = self.context.get("totals") or {}
        if obj.pk not in totals:
            totals = selectors.run_totals(user=self.context["request"].user, run_ids=[obj.pk])
        return RunTotalsSerializer(totals[obj.pk]).data


class RunNowSerializer(serializers.Serializer):
    check_date = BusinessDaySerializerField()

    def validate_check_date(self, day):
        if day > timezone.localdate():  # as the page's RunNowForm
            raise serializers.ValidationError("A day still to come cannot be reconciled: pick today or an earlier day.")
        return day


class ReconciliationResultSerializer(serializers.ModelSerializer):
    outcome = serializers.CharField(help_text=OUTCOME_HELP)
    tax_pay_name = serializers.SerializerMethodField(help_text="masked for a person")
    pay_acct = serializers.SerializerMethodField(help_text="wallet id, masked")
    case_state = serializers.SerializerMethodField()

    class Meta:
        model = ReconciliationResult
        fields = ["id", "tax_org_code", "entrust_date", "tra_no", "outcome", "tax_count", "tax_amount_fen",
                  "ours_state", "ours_amount_fen", "entered_amount_fen", "operator_count", "operator_amount_fen",
                  "case", "case_state", "tax_pay_name", "pay_acct"]

    def get_tax_pay_name(self, obj) -> str:
        return getattr(obj, "shown", {}).get("tax_pay_name", "")

    def get_pay_acct(self, obj) -> str:
        return getattr(obj, "shown", {}).get("pay_acct", "")

    def get_case_state(self, obj) -> str:
        return obj.case.state if obj.case_id and obj.case else ""


class CaseCorrectionSerializer(CorrectionSerializerBase):
    """A correcting transfer of a case; wallets masked."""

    correction_actions = staticmethod(corrections.correction_actions)

    class Meta(CorrectionSerializerBase.Meta):
        model = CaseCorrection


class DiscrepancyCaseSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text=CASE_STATE_HELP)
    outcome = serializers.CharField(read_only=True, help_text=OUTCOME_HELP)
    available_actions = serializers.SerializerMethodField()
    corrections = CaseCorrectionSerializer(many=True, read_only=True)

    class Meta:
        model = DiscrepancyCase
        fields = ["id", "tax_org_code", "entrust_date", "tra_no", "outcome", "check_date", "state", "reason",
                  "investigated_by", "resolved_by", "correcting_transfer", "history", "created_at",
                  "investigating_at", "resolved_at", "available_actions", "corrections"]

    def get_available_actions(self, obj: DiscrepancyCase) -> list[str]:
        if not acts(self.context["request"].user):
            return []
        return {CaseState.OPEN: ["investigate", "resolve"], CaseState.INVESTIGATING: ["resolve"]}.get(obj.state, [])


class ProposeCorrectionSerializer(serializers.Serializer):
    # A plain string (the service refuses others with `invalid_kind`): a choice field would collide with the
    # other `kind` enums of the schema.
    kind = serializers.CharField(max_length=10, help_text="correction kind: " + ", ".join(CorrectionKind.values))
    amount_fen = serializers.IntegerField(min_value=1, max_value=MAX_AMOUNT_FEN)
    reason = serializers.CharField(max_length=255)


class ResolveSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)
    correcting_transfer = IdField(required=False, allow_null=True, default=None,
                                                   help_text="id of the transfer of one of the case's approved corrections")


@extend_schema_view(
    list=extend_schema(summary="Reconciliation runs the caller may see, newest check date first", tags=TAGS,
                       responses={200: ReconciliationRunSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="One run with its totals per outcome", tags=TAGS,
                           responses={200: ReconciliationRunSerializer, **ERRORS}),
)
class ReconciliationRunViewSet(ReconciliationErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, TaxRoles]
    lookup_value_regex = r"\d+"
    queryset = ReconciliationRun.objects.none()
    serializer_class = ReconciliationRunSerializer

    def get_queryset(self):
        return selectors.run_list(user=self.request.user)

    def get_object(self) -> ReconciliationRun:
        return selectors.run_get(user=self.request.user, run_id=self.kwargs["pk"])

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        totals = selectors.run_totals(user=request.user, run_ids=[run.pk for run in page])
        data = ReconciliationRunSerializer(page, many=True, context={"request": request, "totals": totals}).data
        return self.get_paginated_response(data)

    @extend_schema(summary="Queue the reconciliation of a check date for the caller's tax authority (tax staff)",
                   description="202: the run as it is now. A worker reconciles it; GET the run until `step` is empty "
                               "(then `state` and the totals are the new run's, or `failure` says why it stopped). "
                               "A date already queued or under way is not queued again.",
                   tags=TAGS, request=RunNowSerializer, responses={202: ReconciliationRunSerializer, **ERRORS})
    def create(self, request):
        self.ensure_acts()
        data = RunNowSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run, _ = services.request_run(check_date=data.validated_data["check_date"],
                                      tax_org_code=staff_tax_org_code(request.user), user=request.user,
                                      now=timezone.now())
        return Response(ReconciliationRunSerializer(run, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="A run's result rows, by outcome; personal data masked", tags=TAGS,
                   parameters=[OpenApiParameter("outcome", OpenApiTypes.STR, enum=Outcome.values)],
                   responses={200: ReconciliationResultSerializer(many=True), **ERRORS})
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        run = self.get_object()
        outcome = choice(request.query_params, "outcome", Outcome.values, OUTCOME_HELP)
        page = self.paginate_queryset(selectors.result_list(user=request.user, run=run, outcome=outcome))
        describe_results(page)
        return self.get_paginated_response(ReconciliationResultSerializer(page, many=True).data)


def _case_action_schema(summary: str, request=None):
    return extend_schema(summary=summary, tags=TAGS, request=request,
                         responses={200: DiscrepancyCaseSerializer, **ACTION_ERRORS})


@extend_schema_view(
    list=extend_schema(summary="Discrepancy cases the caller may see", tags=TAGS,
                       parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=CaseState.values),
                                   OpenApiParameter("check_date", OpenApiTypes.DATE)],
                       responses={200: DiscrepancyCaseSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="One discrepancy case with its history", tags=TAGS,
                           responses={200: DiscrepancyCaseSerializer, **ERRORS}),
    **case_action_schemas(tags=TAGS, case_serializer=DiscrepancyCaseSerializer,
                          propose_serializer=ProposeCorrectionSerializer),
)
class DiscrepancyCaseViewSet(CaseActionsMixin, ReconciliationErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, TaxRoles]
    lookup_value_regex = r"\d+"
    queryset = DiscrepancyCase.objects.none()
    serializer_class = DiscrepancyCaseSerializer
    propose_serializer_class = ProposeCorrectionSerializer
    investigate_service = staticmethod(services.investigate_case)
    propose_service = staticmethod(corrections.propose_correction)
    approve_service = staticmethod(corrections.approve_correction)
    reject_service = staticmethod(corrections.reject_correction)

    def get_queryset(self):
        params = self.request.query_params
        state = choice(params, "state", CaseState.values, CASE_STATE_HELP) if self.action == "list" else ""
        check_date = day_param(params, "check_date") if self.action == "list" else None
        return selectors.case_list(user=self.request.user, state=state, check_date=check_date)

    def get_object(self) -> DiscrepancyCase:
        return selectors.case_get(user=self.request.user, case_id=self.kwargs["pk"])

    @_case_action_schema("Resolve a case with a reason (and the correcting transfer, if money moved)",
                         ResolveSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        case = self.get_object()
        self.ensure_acts()
        data = ResolveSerializer(data=request.data)
        if not data.is_valid():
            if "reason" in data.errors:
                return _error("reason_required", "请填写处理说明 (a reason is required)", status.HTTP_400_BAD_REQUEST)
            data.is_valid(raise_exception=True)
        services.resolve_case(case_id=case.pk, user=request.user, reason=data.validated_data["reason"],
                              now=timezone.now(), correcting_transfer_id=data.validated_data["correcting_transfer"])
        return self._detail(case.pk)
