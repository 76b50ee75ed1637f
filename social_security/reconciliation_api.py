"""REST API of premium reconciliation (/api/v1/social/reconciliation/): runs (list with totals, detail, run a
date now), a run's results (`?outcome=&source=`), discrepancy cases (list `?state=&check_date=&source=&outcome=`,
detail with history and corrections, investigate, resolve, corrections: propose, approve, reject).

Scoped like the pages: tax staff see and act on their own authority's results and cases (another authority's
case is a 404); auditors and administrators read. Errors and roles are the tax reconciliation API's
(`ReconciliationErrorsMixin`: `{"code", "message"}`; 400 request, 403 access or maker-checker, 404, 409 state,
503 operator unavailable)."""
from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from social_security import reconciliation, selectors
from social_security.models import (
    CorrectionKind, ReconciliationOutcome, ReconciliationResult, ReconciliationRun, ReconciliationSource,
    SocialCaseCorrection, SocialDiscrepancyCase,
)
from tax.api import ACTION_ERRORS, ERRORS, OPERATOR_ERRORS, TaxRoles, _error
from tax.reconciliation.api import ReconciliationErrorsMixin, RunNowSerializer
from tax.reconciliation.case_api import (
    CaseActionsMixin, CorrectionSerializerBase, case_action_schemas, choice, day_param,
)
from tax.reconciliation.models import CaseState
from tax.services import MAX_AMOUNT_FEN
from tax.reconciliation.views import acts
from treasury.access.permissions import API_AUTHENTICATION, ReadOnlyForAuditors

TAGS = ["social insurance: reconciliation"]
OUTCOME_HELP = "outcome: " + ", ".join(ReconciliationOutcome.values)
SOURCE_HELP = "source: " + ", ".join(ReconciliationSource.values)
CASE_STATE_HELP = "case state: " + ", ".join(CaseState.values)


class SocialOutcomeTotalSerializer(serializers.Serializer):
    outcome = serializers.CharField(help_text=OUTCOME_HELP)
    label = serializers.CharField()
    count = serializers.IntegerField()
    ours_fen = serializers.IntegerField()
    operator_fen = serializers.IntegerField()


class SocialRunTotalsSerializer(serializers.Serializer):
    outcomes = SocialOutcomeTotalSerializer(many=True)
    count = serializers.IntegerField()
    discrepancies = serializers.IntegerField()
    ours_fen = serializers.IntegerField()
    operator_fen = serializers.IntegerField()


class SocialReconciliationRunSerializer(serializers.ModelSerializer):
    totals = serializers.SerializerMethodField(help_text="over the results the caller may see")

    class Meta:
        model = ReconciliationRun
        fields = ["id", "check_date", "runs", "ran_at", "totals"]

    def get_totals(self, obj) -> dict:
        totals = self.context.get("totals") or selectors.run_totals(user=self.context["request"].user,
                                                                    run_ids=[obj.pk])
        return SocialRunTotalsSerializer(totals[obj.pk]).data


class SocialReconciliationResultSerializer(serializers.ModelSerializer):
    outcome = serializers.CharField(help_text=OUTCOME_HELP)
    source = serializers.CharField(help_text=SOURCE_HELP)
    tax_org_code = serializers.SerializerMethodField()
    case_state = serializers.SerializerMethodField()

    class Meta:
        model = ReconciliationResult
        fields = ["id", "source", "tax_org_code", "request_id", "document_no", "outcome", "ours_fen", "expected_fen",
                  "operator_fen", "operator_count", "acknowledged", "declaration", "flexible_payment", "case",
                  "case_state"]

    def get_tax_org_code(self, obj) -> str:
        return obj.tax_authority.code if obj.tax_authority_id else ""

    def get_case_state(self, obj) -> str:
        return obj.case.state if obj.case_id else ""


class SocialCaseCorrectionSerializer(CorrectionSerializerBase):
    kind = serializers.CharField(read_only=True, help_text="refund or collect")
    correction_actions = staticmethod(reconciliation.correction_actions)

    class Meta(CorrectionSerializerBase.Meta):
        model = SocialCaseCorrection


class SocialDiscrepancyCaseSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text=CASE_STATE_HELP)
    outcome = serializers.CharField(read_only=True, help_text=OUTCOME_HELP)
    source = serializers.CharField(read_only=True, help_text=SOURCE_HELP)
    tax_org_code = serializers.SerializerMethodField()
    available_actions = serializers.SerializerMethodField()
    corrections = SocialCaseCorrectionSerializer(many=True, read_only=True)

    class Meta:
        model = SocialDiscrepancyCase
        fields = ["id", "source", "tax_org_code", "request_id", "document_no", "outcome", "check_date", "state",
                  "reason", "investigated_by", "resolved_by", "correcting_transfer", "history", "created_at",
                  "investigating_at", "resolved_at", "available_actions", "corrections"]

    def get_tax_org_code(self, obj) -> str:
        return obj.tax_authority.code if obj.tax_authority_id else ""

    def get_available_actions(self, obj) -> list[str]:
        if not acts(self.context["request"].user):
            return []
        return {CaseState.OPEN: ["investigate", "resolve", "propose_correction"],
                CaseState.INVESTIGATING: ["resolve", "propose_correction"]}.get(obj.state, [])


class SocialResolveSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)


class SocialProposeCorrectionSerializer(serializers.Serializer):
    kind = serializers.CharField(max_length=10, help_text="correction kind: " + ", ".join(CorrectionKind.values))
    amount_fen = serializers.IntegerField(min_value=1, max_value=MAX_AMOUNT_FEN)
    reason = serializers.CharField(max_length=255)


@extend_schema_view(
    list=extend_schema(summary="Premium reconciliation runs, newest check date first", tags=TAGS,
                       responses={200: SocialReconciliationRunSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="One day's run with its totals per outcome", tags=TAGS,
                           responses={200: SocialReconciliationRunSerializer, **ERRORS}),
)
class SocialReconciliationRunViewSet(ReconciliationErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, TaxRoles]
    lookup_value_regex = r"\d+"
    queryset = ReconciliationRun.objects.none()
    serializer_class = SocialReconciliationRunSerializer

    def get_queryset(self):
        return selectors.reconciliation_runs(user=self.request.user)

    def get_object(self) -> ReconciliationRun:
        return selectors.reconciliation_run_get(user=self.request.user, run_id=self.kwargs["pk"])

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        totals = selectors.run_totals(user=request.user, run_ids=[run.pk for run in page])
        data = SocialReconciliationRunSerializer(page, many=True, context={"request": request, "totals": totals}).data
        return self.get_paginated_response(data)

    @extend_schema(summary="Reconcile a check date now (tax staff); both halves, every authority", tags=TAGS,
                   request=RunNowSerializer, responses={201: SocialReconciliationRunSerializer, **OPERATOR_ERRORS})
    def create(self, request):
        self.ensure_acts()
        data = RunNowSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = reconciliation.reconcile_now(check_date=data.validated_data["check_date"])
        return Response(SocialReconciliationRunSerializer(run, context={"request": request}).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(summary="A run's results (every payment of the day), by outcome and source", tags=TAGS,
                   parameters=[OpenApiParameter("outcome", OpenApiTypes.STR, enum=ReconciliationOutcome.values),
                               OpenApiParameter("source", OpenApiTypes.STR, enum=ReconciliationSource.values)],
                   responses={200: SocialReconciliationResultSerializer(many=True), **ERRORS})
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        run = self.get_object()
        params = request.query_params
        outcome = choice(params, "outcome", ReconciliationOutcome.values, OUTCOME_HELP)
        source = choice(params, "source", ReconciliationSource.values, SOURCE_HELP)
        page = self.paginate_queryset(selectors.run_results(user=request.user, run=run, outcome=outcome,
                                                            source=source).select_related("tax_authority"))
        return self.get_paginated_response(SocialReconciliationResultSerializer(page, many=True).data)


def _case_action_schema(summary: str, request=None):
    return extend_schema(summary=summary, tags=TAGS, request=request,
                         responses={200: SocialDiscrepancyCaseSerializer, **ACTION_ERRORS})


@extend_schema_view(
    list=extend_schema(summary="Premium discrepancy cases the caller may see", tags=TAGS,
                       parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=CaseState.values),
                                   OpenApiParameter("check_date", OpenApiTypes.DATE),
                                   OpenApiParameter("source", OpenApiTypes.STR, enum=ReconciliationSource.values),
                                   OpenApiParameter("outcome", OpenApiTypes.STR, enum=ReconciliationOutcome.values)],
                       responses={200: SocialDiscrepancyCaseSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="One case with its history and corrections", tags=TAGS,
                           responses={200: SocialDiscrepancyCaseSerializer, **ERRORS}),
    **case_action_schemas(tags=TAGS, case_serializer=SocialDiscrepancyCaseSerializer,
                          propose_serializer=SocialProposeCorrectionSerializer),
)
class SocialDiscrepancyCaseViewSet(CaseActionsMixin, ReconciliationErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, TaxRoles]
    lookup_value_regex = r"\d+"
    queryset = SocialDiscrepancyCase.objects.none()
    serializer_class = SocialDiscrepancyCaseSerializer
    propose_serializer_class = SocialProposeCorrectionSerializer
    investigate_service = staticmethod(reconciliation.investigate_case)
    propose_service = staticmethod(reconciliation.propose_correction)
    approve_service = staticmethod(reconciliation.approve_correction)
    reject_service = staticmethod(reconciliation.reject_correction)

    def get_queryset(self):
        params = self.request.query_params if self.action == "list" else {}
        check_date = day_param(params, "check_date")
        return selectors.case_list(
            user=self.request.user, state=choice(params, "state", CaseState.values, CASE_STATE_HELP),
            check_date=check_date, source=choice(params, "source", ReconciliationSource.values, SOURCE_HELP),
            outcome=choice(params, "outcome", ReconciliationOutcome.values, OUTCOME_HELP))

    def get_object(self) -> SocialDiscrepancyCase:
        return selectors.case_get(user=self.request.user, case_id=self.kwargs["pk"])

    @_case_action_schema("Resolve a case with a reason", SocialResolveSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        case = self.get_object()
        self.ensure_acts()
        data = SocialResolveSerializer(data=request.data)
        if not data.is_valid():
            return _error("reason_required", "请填写处理说明 (a reason is required)", status.HTTP_400_BAD_REQUEST)
        reconciliation.resolve_case(case_id=case.pk, user=request.user, reason=data.validated_data["reason"],
                                    now=timezone.now())
        return self._detail(case.pk)
