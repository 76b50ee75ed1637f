"""API parts both reconciliations' case viewsets share (tax: tax.reconciliation.api, social insurance:
social_security.reconciliation_api): the filter-choice check and the case actions investigate, propose,
approve and reject a correction. Resolve stays in each module: tax takes a correcting transfer, social does not.
"""
from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from tax.api import _error


def choice(params, name: str, allowed: list[str], help_text: str) -> str:
    """A query parameter that must be one of `allowed` (or absent); a 400 naming the choices otherwise."""
    value = params.get(name, "")
    if value and value not in allowed:
        raise serializers.ValidationError({name: [help_text]})
    return value


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
