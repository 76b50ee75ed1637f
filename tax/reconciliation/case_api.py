"""API parts both reconciliations' case viewsets share (tax: tax.reconciliation.api, social insurance:
social_security.reconciliation_api): the filter-choice check and the case actions investigate, propose,
approve and reject a correction. Resolve stays in each module: tax takes a correcting transfer, social does not.
"""
from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from tax.api import ACTION_ERRORS, _error
from treasury.identifiers import mask_wallet_id

from .views import acts


def choice(params, name: str, allowed: list[str], help_text: str) -> str:
    """A query parameter that must be one of `allowed` (or absent); a 400 naming the choices otherwise."""
    value = params.get(name, "")
    if value and value not in allowed:
        raise serializers.ValidationError({name: [help_text]})
    return value


def day_param(params, name: str):
    """A query parameter that must be a business day (or absent: None); a 400 naming the parameter otherwise, its
    details an object like every field error's (the field's own error is a bare list, which the schema's error
    shape does not allow)."""
    from treasury.business_days import BusinessDaySerializerField

    value = params.get(name) or None
    if value is None:
        return None
    try:
        return BusinessDaySerializerField().run_validation(value)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({name: exc.detail}) from None


# No docstring: the schema would show it on every subclass that has none.
class CorrectionSerializerBase(serializers.ModelSerializer):
    # A correcting transfer of a case, wallets masked. A subclass sets Meta.model (inheriting this Meta) and
    # `correction_actions`, its app's function telling which actions a user may take on a correction.
    payer = serializers.SerializerMethodField()
    payee = serializers.SerializerMethodField()
    proposed_by = serializers.CharField(source="proposed_by.username", read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, default="")
    state = serializers.CharField(read_only=True, help_text="proposed, approved, rejected")
    available_actions = serializers.SerializerMethodField()
    correction_actions = None

    class Meta:
        fields = ["id", "kind", "amount_fen", "reason", "payer", "payee", "state", "proposed_by", "proposed_at",
                  "decided_by", "decided_at", "reject_reason", "transfer", "available_actions"]

    def get_payer(self, obj) -> str:
        return mask_wallet_id(obj.payer.wallet_id)

    def get_payee(self, obj) -> str:
        return mask_wallet_id(obj.payee.wallet_id)

    def get_available_actions(self, obj) -> list[str]:
        user = self.context["request"].user
        return self.correction_actions(obj, user) if acts(user) else []


class InvestigateSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class RejectCorrectionSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


# No docstring: the schema would take it as the description of every operation of the viewset.
# The case actions of a discrepancy case viewset. The viewset gives `get_object` (the scoped case),
# `serializer_class`, `ensure_acts`, `propose_serializer_class` and the services below (as staticmethods);
# each names its schemas with `extend_schema_view`, since tags and response shapes are its own.
class CaseActionsMixin:

    propose_serializer_class: type[serializers.Serializer]
    investigate_service = propose_service = approve_service = reject_service = None

    def _detail(self, case_id: int) -> Response:
        # Read again after the action, so the answer shows the new state and history.
        case = self.get_object()
        return Response(self.serializer_class(case, context={"request": self.request}).data)

    def _correction(self, case, correction_id):
        correction = case.corrections.filter(pk=correction_id).first()
        if correction is None:
            raise NotFound("no such correction")
        return correction

    @action(detail=True, methods=["post"])
    def investigate(self, request, pk=None):
        case = self.get_object()
        self.ensure_acts()
        data = InvestigateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        self.investigate_service(case_id=case.pk, user=request.user, note=data.validated_data["note"],
                                 now=timezone.now())
        return self._detail(case.pk)

    @action(detail=True, methods=["post"], url_path="corrections")
    def propose_correction(self, request, pk=None):
        case = self.get_object()
        self.ensure_acts()
        data = self.propose_serializer_class(data=request.data)
        data.is_valid(raise_exception=True)
        self.propose_service(case_id=case.pk, user=request.user, now=timezone.now(), **data.validated_data)
        return self._detail(case.pk)

    @action(detail=True, methods=["post"], url_path=r"corrections/(?P<correction_id>\d+)/approve")
    def approve_correction(self, request, pk=None, correction_id=None):
        case = self.get_object()
        self.ensure_acts()
        self.approve_service(correction_id=self._correction(case, correction_id).pk, user=request.user,
                             now=timezone.now())
        return self._detail(case.pk)

    @action(detail=True, methods=["post"], url_path=r"corrections/(?P<correction_id>\d+)/reject")
    def reject_correction(self, request, pk=None, correction_id=None):
        case = self.get_object()
        self.ensure_acts()
        data = RejectCorrectionSerializer(data=request.data)
        if not data.is_valid():
            return _error("reason_required", "请填写原因 (a reason is required)", status.HTTP_400_BAD_REQUEST)
        self.reject_service(correction_id=self._correction(case, correction_id).pk, user=request.user,
                            reason=data.validated_data["reason"], now=timezone.now())
        return self._detail(case.pk)


def case_action_schemas(*, tags: list[str], case_serializer, propose_serializer) -> dict:
    """OpenAPI schemas of CaseActionsMixin's four actions, for a viewset's extend_schema_view(**...)."""
    def schema(summary: str, request=None):
        return extend_schema(summary=summary, tags=tags, request=request,
                             responses={200: case_serializer, **ACTION_ERRORS})

    return {
        "investigate": schema("Take an open case into investigation", InvestigateSerializer),
        "propose_correction": schema("Propose a correcting transfer (another tax staff member approves it)",
                                     propose_serializer),
        "approve_correction": schema("Approve a proposed correction: the transfer is made through the transfer core"),
        "reject_correction": schema("Reject a proposed correction with a reason", RejectCorrectionSerializer),
    }
