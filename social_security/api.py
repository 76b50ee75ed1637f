"""REST API of employers' social-insurance declarations under /api/v1/social/.

    GET  social/declarations/                 list (filters state, period), scoped like the pages
    POST social/declarations/                 a draft from lines [{name, resident_id, base}] (base in yuan)
                                              or from a payroll batch {payroll_batch}
    POST social/declarations/import/          a draft from a CSV/XLSX file (multipart: file, region, period)
    GET  social/declarations/{id}/            one declaration, its available actions and its receipt
    GET  social/declarations/{id}/lines/      its lines (clamped bases with notes, per-type amounts)
    POST social/declarations/{id}/declare|pay|reopen|cancel/

Scoping comes from `social_security.selectors`: another employer's declaration answers 404 like one that
does not exist; tax staff read their authority's; auditors read all. Refusals answer `{"code", "message"}`
(400; 409 for a move the state does not allow); line problems add `problems` [{line, column, code, message}].
"""
from __future__ import annotations

from django.utils import timezone
from django_fsm import ConcurrentTransition, TransitionNotAllowed
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from treasury.access import roles
from treasury.access.api_errors import ErrorSerializer, JsonErrorsMixin, api_exception_handler
from treasury.access.errors import AccessDenied
from treasury.access.permissions import API_AUTHENTICATION, ReadOnlyForAuditors, roles_permission
from treasury.api_limits import IdField
from treasury.errors import InvalidTransfers
from treasury.identifiers import mask_name, mask_resident_id
from treasury.money import InvalidAmount, fen_to_yuan_str, yuan_to_fen

from . import parsing, selectors, services
from .models import Declaration, DeclarationLine, DeclarationState

TAGS = ["social insurance"]
STATE_HELP = "declaration state: " + ", ".join(DeclarationState.values)
CONFLICT_CODES = {"not_draft", "not_payable", "not_cancellable", "not_rejected", "already_declared"}
ReadRoles = roles_permission(*selectors.READ_ROLES)


def _error(code: str, message: str, http_status: int, **extra) -> Response:
    return Response({"code": code, "message": message, **extra}, status=http_status)


def social_exception_handler(exc, context):
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        return _error("invalid_state", "申报当前状态不允许此操作 (the declaration's state does not allow this)",
                      status.HTTP_409_CONFLICT)
    if isinstance(exc, services.DeclarationRefused):
        return _error(exc.code, str(exc), status.HTTP_400_BAD_REQUEST, problems=[
            {"line": p.line, "column": p.column, "code": p.code, "message": p.message} for p in exc.problems[:1000]])
    if isinstance(exc, services.SocialError):
        http_status = status.HTTP_409_CONFLICT if exc.code in CONFLICT_CODES else status.HTTP_400_BAD_REQUEST
        return _error(exc.code, str(exc), http_status)
    if isinstance(exc, parsing.DeclarationFileRefused):
        return _error(exc.code, str(exc), status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, InvalidTransfers):
        return _error(exc.code, str(exc), status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, AccessDenied) and exc.code == "not_found":
        # The service's refusal of someone outside the declaring employer who can see the declaration (the tax
        # authority's staff; anyone else got 404 before the service was called): a 403 coded "not_found" told a
        # client the declaration it had just read did not exist.
        return _error("other_organization", str(exc), status.HTTP_403_FORBIDDEN)
    return api_exception_handler(exc, context)


class SocialErrorsMixin(JsonErrorsMixin):
    def get_exception_handler(self):
        return social_exception_handler


def _yuan(fen):
    return None if fen is None else fen_to_yuan_str(fen)


class DeclarationSerializer(serializers.ModelSerializer):
    declaration_no = serializers.CharField(read_only=True)
    employer = serializers.CharField(source="employer.name", read_only=True)
    region = serializers.CharField(source="region.code", read_only=True)
    tax_org_code = serializers.CharField(source="tax_authority.code", read_only=True)
    state = serializers.CharField(read_only=True, help_text=STATE_HELP)
    employer_total = serializers.SerializerMethodField(help_text="yuan")
    individual_total = serializers.SerializerMethodField(help_text="yuan")
    total = serializers.SerializerMethodField(help_text="yuan")
    confirmed_total = serializers.SerializerMethodField(help_text="yuan, as the tax system confirmed it")

    class Meta:
        model = Declaration
        fields = ["id", "declaration_no", "employer", "region", "tax_org_code", "period", "source", "state",
                  "state_reason", "line_count", "employer_total_fen", "individual_total_fen", "total_fen",
                  "employer_total", "individual_total", "total", "voucher_no", "confirmed_total_fen",
                  "confirmed_total", "work_injury_class", "work_injury_class_set", "created_at", "declared_at",
                  "confirmed_at", "paid_at", "reconciled_at"]

    def get_employer_total(self, obj) -> str:
        return _yuan(obj.employer_total_fen)

    def get_individual_total(self, obj) -> str:
        return _yuan(obj.individual_total_fen)

    def get_total(self, obj) -> str:
        return _yuan(obj.total_fen)

    def get_confirmed_total(self, obj) -> str | None:
        return _yuan(obj.confirmed_total_fen)


class DeclarationDetailSerializer(DeclarationSerializer):
    actions = serializers.SerializerMethodField(help_text="what the caller may do now")
    transfer_id = serializers.IntegerField(read_only=True, allow_null=True)
    transfer_state = serializers.CharField(source="transfer.state", read_only=True, default=None)
    receipt_number = serializers.SerializerMethodField(help_text="the paying transfer's signed receipt, once issued")
    payment_attempts = serializers.IntegerField(read_only=True)
    payroll_batch_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta(DeclarationSerializer.Meta):
        fields = DeclarationSerializer.Meta.fields + ["actions", "transfer_id", "transfer_state", "receipt_number",
                                                      "payment_attempts", "payroll_batch_id", "payment_notified_at"]

    def get_actions(self, obj) -> list[str]:
        return selectors.declaration_actions(user=self.context["request"].user, declaration=obj).names()

    def get_receipt_number(self, obj) -> str:
        return selectors.receipt_number(declaration=obj)


class LineSerializer(serializers.ModelSerializer):
    name = serializers.SerializerMethodField()
    resident_id = serializers.SerializerMethodField()
    withheld_difference_fen = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = DeclarationLine
        fields = ["line_no", "name", "resident_id", "declared_base_fen", "base_fen", "base_note",
                  "pension_employer_fen", "pension_individual_fen", "medical_employer_fen", "medical_individual_fen",
                  "unemployment_employer_fen", "unemployment_individual_fen", "work_injury_employer_fen",
                  "work_injury_individual_fen", "employer_fen", "individual_fen", "total_fen", "payroll_line_id",
                  "payroll_withheld_fen", "withheld_difference_fen"]

    def _full(self) -> bool:
        user = self.context["request"].user
        return roles.has_role(user, *selectors.EMPLOYER_ROLES) and not roles.is_read_only(user)

    def get_name(self, obj) -> str:
        return obj.name if self._full() else mask_name(obj.name)

    def get_resident_id(self, obj) -> str:
        return obj.resident_id if self._full() else mask_resident_id(obj.resident_id)


class LineInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    resident_id = serializers.CharField(max_length=18)
    base = serializers.CharField(max_length=20, help_text="declared base in yuan, e.g. 8000.00")


class CreateSerializer(serializers.Serializer):
    region = serializers.RegexField(r"^\d{6}$", help_text="region code, e.g. 370100")
    period = serializers.RegexField(r"^\d{4}-(0[1-9]|1[0-2])$", required=False, help_text="YYYY-MM (not with payroll_batch)")
    lines = LineInSerializer(many=True, required=False)
    payroll_batch = IdField(required=False, help_text="take the lines from this payroll batch")

    def validate(self, data):
        if data.get("payroll_batch") is None and not data.get("period"):
            raise serializers.ValidationError({"period": ["required unless payroll_batch is given"]})
        return data


class ImportSerializer(serializers.Serializer):
    region = serializers.RegexField(r"^\d{6}$")
    period = serializers.RegexField(r"^\d{4}-(0[1-9]|1[0-2])$")
    file = serializers.FileField(help_text="CSV or XLSX in the declaration template's format")


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


READ_ERRORS = {400: OpenApiResponse(ErrorSerializer), 401: OpenApiResponse(ErrorSerializer),
               403: OpenApiResponse(ErrorSerializer), 404: OpenApiResponse(ErrorSerializer)}
ERRORS = {**READ_ERRORS, 409: OpenApiResponse(ErrorSerializer)}


@extend_schema_view(
    list=extend_schema(summary="Declarations the caller may see", tags=TAGS, parameters=[
        OpenApiParameter("state", str, description=STATE_HELP), OpenApiParameter("period", str, description="YYYY-MM")],
        responses={200: DeclarationSerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(summary="One declaration with its actions and receipt", tags=TAGS,
                           responses={200: DeclarationDetailSerializer, **READ_ERRORS}),
)
class DeclarationViewSet(SocialErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors, ReadRoles]
    lookup_value_regex = r"\d+"
    queryset = Declaration.objects.none()
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_serializer_class(self):
        return DeclarationSerializer if self.action == "list" else DeclarationDetailSerializer

    def get_queryset(self):
        params = self.request.query_params
        state = params.get("state", "") if self.action == "list" else ""
        if state and state not in DeclarationState.values:
            raise serializers.ValidationError({"state": [STATE_HELP]})
        return selectors.declaration_list(user=self.request.user, state=state, period=params.get("period", ""))

    def get_object(self) -> Declaration:
        return selectors.declaration_get(user=self.request.user, declaration_id=self.kwargs["pk"])

    def _detail(self, declaration_id: int, http_status=status.HTTP_200_OK) -> Response:
        fresh = selectors.declaration_get(user=self.request.user, declaration_id=declaration_id)
        return Response(DeclarationDetailSerializer(fresh, context={"request": self.request}).data, status=http_status)

    @extend_schema(summary="Prepare a draft declaration (employer operator): lines, or a payroll batch", tags=TAGS,
                   request=CreateSerializer, responses={201: DeclarationDetailSerializer, **ERRORS})
    def create(self, request):
        data = CreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v, now = data.validated_data, timezone.now()
        if v.get("payroll_batch") is not None:
            declaration = services.declaration_from_payroll(user=request.user, payroll_batch_id=v["payroll_batch"],
                                                            region_code=v["region"], now=now)
        else:
            rows, problems = [], []
            for index, line in enumerate(v.get("lines", []), start=1):
                try:
                    base = yuan_to_fen(line["base"])
                except InvalidAmount as exc:
                    problems.append(services.Problem(index, "base", "amount_format", str(exc)))
                    base = 0
                rows.append(services.LineInput(name=line["name"], resident_id=line["resident_id"], base_fen=base,
                                               line=index))
            if problems:
                raise services.DeclarationRefused(problems)
            declaration = services.create_declaration(user=request.user, region_code=v["region"], period=v["period"],
                                                      rows=rows, now=now)
        return self._detail(declaration.pk, status.HTTP_201_CREATED)

    @extend_schema(summary="Prepare a draft declaration from a CSV/XLSX file (every line problem listed)", tags=TAGS,
                   request={"multipart/form-data": ImportSerializer}, responses={201: DeclarationDetailSerializer, **ERRORS})
    @action(detail=False, methods=["post"], url_path="import")
    def import_file(self, request):
        data = ImportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        declaration = services.import_declaration_file(
            user=request.user, region_code=data.validated_data["region"], period=data.validated_data["period"],
            data=upload.read(), filename=upload.name, now=timezone.now())
        return self._detail(declaration.pk, status.HTTP_201_CREATED)

    @extend_schema(summary="The declaration's lines", tags=TAGS,
                   responses={200: LineSerializer(many=True), **READ_ERRORS})
    @action(detail=True, methods=["get"])
    def lines(self, request, pk=None):
        declaration = self.get_object()
        page = self.paginate_queryset(selectors.declaration_lines(declaration=declaration))
        serializer = LineSerializer(page, many=True, context={"request": request})
        return self.get_paginated_response(serializer.data) if page is not None else Response(serializer.data)

    def _run(self, service, **extra) -> Response:
        declaration = self.get_object()  # 404 for another employer's declaration, before anything else
        service(declaration_id=declaration.pk, user=self.request.user, now=timezone.now(), **extra)
        return self._detail(declaration.pk)

    @extend_schema(summary="Declare to the tax system (an employer approver, not the preparer)", tags=TAGS,
                   request=None, responses={200: DeclarationDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def declare(self, request, pk=None):
        return self._run(services.declare)

    @extend_schema(summary="Pay the confirmed total under the active three-party agreement (an employer approver, "
                           "not the preparer)", tags=TAGS, request=None,
                   responses={200: DeclarationDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def pay(self, request, pk=None):
        return self._run(services.pay_declaration)

    @extend_schema(summary="A rejected declaration back to draft for a fix", tags=TAGS, request=None,
                   responses={200: DeclarationDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        return self._run(services.reopen_declaration)

    @extend_schema(summary="Cancel a draft or rejected declaration, with a reason", tags=TAGS,
                   request=ReasonSerializer, responses={200: DeclarationDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        self.get_object()
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._run(services.cancel_declaration, reason=data.validated_data["reason"])
