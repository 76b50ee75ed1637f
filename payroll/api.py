"""REST API of payroll: batches, their lines, upload, the workflow actions, progress and the error report.

Querysets come from `payroll.selectors` (scoped: another employer's batch answers 404, like one that
does not exist). Actions call one service each; a refusal answers JSON `{"code", "message"}`:
403 for access (role, maker-checker, auditors), 409 for a move the batch's state does not allow,
400 for a refused file or request.
"""
import io

from django.http import FileResponse
from django.urls import reverse
from django.utils import timezone
from django_fsm import ConcurrentTransition, TransitionNotAllowed
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from treasury.access.api_errors import ErrorSerializer, JsonErrorsMixin
from treasury.access.errors import AccessDenied
from treasury.access.permissions import API_AUTHENTICATION, ReadOnlyForAuditors
from treasury.access.scoping import user_organization
from treasury.api_limits import IdField
from treasury.identifiers import mask_name, mask_resident_id, mask_wallet_id
from treasury.money import fen_to_yuan_str
from treasury.services.transfers import MAX_AMOUNT_FEN, OperatorUnavailable

from . import selectors, services
from . import union as union_rules
from .forms import PERIOD_RE, period_of, recent_periods
from .models import (
    ArchiveState, BatchState, DuesCall, PayrollBatch, PayrollLine, PayslipArchive, UnionMember, UnionSettings,
)
from .parsing import PayrollFileRefused

REPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


# A plain string in the schema: an enum here would clash with the transfer states' enum name.
STATE_HELP = "batch state: " + ", ".join(BatchState.values)

# ---------------------------------------------------------------------------------------------
# Serializers
# ---------------------------------------------------------------------------------------------


class ProblemSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="line number as the employer sees it in the file (0: the file as a whole)")
    column = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class PayrollBatchSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text=STATE_HELP)
    employer = serializers.CharField(source="employer.name", read_only=True)
    prepared_by = serializers.CharField(source="prepared_by.username", read_only=True)
    approved_by = serializers.CharField(source="approved_by.username", read_only=True, allow_null=True, default=None)
    total_net_yuan = serializers.SerializerMethodField(help_text='total net pay in yuan as a decimal string')
    warning_count = serializers.IntegerField(
        read_only=True, help_text="lines with at least one warning (list them: lines/?with_warnings=true); "
                                  "a warning never stops paying")

    class Meta:
        model = PayrollBatch
        fields = [
            "id", "batch_ref", "employer", "period", "filename", "file_format", "state", "line_total",
            "payable_count", "held_count", "problem_count", "warning_count", "total_net_fen", "total_net_yuan",
            "total_gross_fen",
            "prepared_by", "approved_by", "cancel_reason", "created_at", "submitted_at", "approved_at", "paying_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_total_net_yuan(self, obj: PayrollBatch) -> str:
        return fen_to_yuan_str(obj.total_net_fen)


class PayrollBatchDetailSerializer(PayrollBatchSerializer):
    problems = ProblemSerializer(many=True, read_only=True)
    available_actions = serializers.SerializerMethodField(help_text="the actions the caller may take now")

    class Meta(PayrollBatchSerializer.Meta):
        fields = PayrollBatchSerializer.Meta.fields + ["problems", "available_actions"]
        read_only_fields = fields

    def get_available_actions(self, obj: PayrollBatch) -> list[str]:
        return list(selectors.batch_actions(user=self.context["request"].user, batch=obj).available)


class PayrollLineSerializer(serializers.ModelSerializer):
    """A line as a list shows it: name, resident ID and wallet masked."""

    name = serializers.SerializerMethodField()
    resident_id = serializers.SerializerMethodField()
    wallet_id = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField(
        help_text="held, not_paid, or the state of the line's transfer (pending, submitted, unknown, settled, failed, ...)"
    )
    transfer_id = serializers.IntegerField(read_only=True, allow_null=True)
    failure_message = serializers.SerializerMethodField()
    warnings = serializers.ListField(
        child=serializers.CharField(), read_only=True,
        help_text="what the upload noticed on the line without refusing it, each 中文 (English): a resident ID's "
                  "unknown region, union dues other than the union's rules give; the line is paid as the file says")

    class Meta:
        model = PayrollLine
        # `id`: what retry/ and return/ take in `line_ids` (without it a client had no way to name a line).
        fields = [
            "id", "line_no", "employee_no", "name", "resident_id", "wallet_id", "components", "deductions", "gross_fen",
            "net_fen", "held", "hold_reason", "state", "transfer_id", "failure_message", "warnings",
        ]
        read_only_fields = fields

    def get_name(self, obj: PayrollLine) -> str:
        return mask_name(obj.name)

    def get_resident_id(self, obj: PayrollLine) -> str:
        return mask_resident_id(obj.resident_id)

    def get_wallet_id(self, obj: PayrollLine) -> str:
        return mask_wallet_id(obj.wallet_id)

    def get_state(self, obj: PayrollLine) -> str:
        return selectors.line_state(obj)

    def get_failure_message(self, obj: PayrollLine) -> str:
        return obj.transfer.failure_message if obj.transfer_id else ""


class ProgressSerializer(serializers.Serializer):
    state = serializers.CharField(help_text=STATE_HELP)
    count = serializers.IntegerField(help_text="lines being paid")
    amount_fen = serializers.IntegerField()
    paid_count = serializers.IntegerField()
    paid_fen = serializers.IntegerField()
    failed_count = serializers.IntegerField()
    failed_fen = serializers.IntegerField()
    open_count = serializers.IntegerField(help_text="lines not decided yet")
    open_fen = serializers.IntegerField()
    done = serializers.BooleanField(help_text="no line is still open")


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="the payroll file, CSV (UTF-8 or GBK) or XLSX")
    hold_invalid_lines = serializers.BooleanField(
        required=False, default=False, help_text="keep the valid lines (held lines are not paid) instead of rejecting the file"
    )


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


class LineIdsSerializer(serializers.Serializer):
    line_ids = serializers.ListField(child=IdField(), min_length=1, max_length=10_000,
                                     help_text="ids of held or failed lines of this batch")


class ReturnLinesSerializer(LineIdsSerializer):
    reason = serializers.CharField(max_length=255, help_text="why these lines are not paid by this batch")


class SummaryReceiptSerializer(serializers.Serializer):
    number = serializers.CharField()
    batch_ref = serializers.CharField()
    issued_at = serializers.DateTimeField()
    download_url = serializers.CharField(help_text="the signed PDF")
    verification_code = serializers.CharField()


class PayslipArchiveSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text="queued, building, ready or failed")
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    percent = serializers.IntegerField(read_only=True, help_text="payslips written so far, in percent")
    download_url = serializers.SerializerMethodField(help_text="the zip, once ready (null before)")

    class Meta:
        model = PayslipArchive
        fields = ["id", "batch_id", "state", "done_count", "total_count", "percent", "error", "requested_by",
                  "created_at", "finished_at", "download_url"]
        read_only_fields = fields

    def get_download_url(self, obj: PayslipArchive) -> str | None:
        if obj.state != ArchiveState.READY or not obj.file_path:
            return None
        return reverse("api-payroll-batch-payslip-archive-download", kwargs={"pk": obj.batch_id, "archive_id": obj.pk})


class LineFilterSerializer(serializers.Serializer):
    with_warnings = serializers.BooleanField(required=False, default=False)


class BatchFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=BatchState.values, required=False)
    period = serializers.RegexField(r"^\d{4}-(0[1-9]|1[0-2])$", required=False)


ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
# ?fmt=csv answers CSV, ?fmt=xlsx a workbook: both declared, so a client (and the schema check) expects either.
SPREADSHEET_RESPONSES = {
    (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="CSV (fmt=csv)"),
    (200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"): OpenApiResponse(
        OpenApiTypes.BINARY, description="XLSX workbook (fmt=xlsx)"),
}
ACTION_ERRORS = {**ERRORS, 409: ErrorSerializer, 503: ErrorSerializer}
TAGS = ["payroll"]


def _refusal(exc: Exception) -> Response:
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        return Response({"code": "invalid_state",
                         "message": "批次当前状态不允许此操作 (the batch's state does not allow this)"},
                        status=status.HTTP_409_CONFLICT)
    if isinstance(exc, AccessDenied):
        return Response({"code": exc.code, "message": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, OperatorUnavailable):
        return Response({"code": "operator_unavailable",
                         "message": f"暂时无法联系运营机构，未做任何记录，请稍后再试 (the e-CNY operator cannot be reached; "
                                    f"nothing was recorded, try again later): {exc}"},
                        status=status.HTTP_503_SERVICE_UNAVAILABLE)
    code = getattr(exc, "code", "refused")
    conflicts = ("insufficient_funds", "duplicate_file", "batch_not_paying", "archive_not_ready")
    http_status = status.HTTP_409_CONFLICT if code in conflicts else status.HTTP_400_BAD_REQUEST
    return Response({"code": code, "message": str(exc)}, status=http_status)


def _action_schema(summary: str, request=None):
    return extend_schema(summary=summary, tags=TAGS, request=request,
                         responses={200: PayrollBatchDetailSerializer, **ACTION_ERRORS})


@extend_schema_view(
    list=extend_schema(
        summary="Payroll batches the caller may see", tags=TAGS,
        parameters=[
            OpenApiParameter("state", OpenApiTypes.STR, enum=BatchState.values, description="only batches in this state"),
            OpenApiParameter("period", OpenApiTypes.STR, description="only batches of this pay period, YYYY-MM"),
        ],
        responses={200: PayrollBatchSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(summary="One payroll batch with its validation report", tags=TAGS,
                           responses={200: PayrollBatchDetailSerializer, **ERRORS}),
)
class PayrollBatchViewSet(JsonErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors]
    lookup_value_regex = r"\d+"
    queryset = PayrollBatch.objects.none()  # for the schema; requests use get_queryset

    def get_serializer_class(self):
        return PayrollBatchSerializer if self.action == "list" else PayrollBatchDetailSerializer

    def get_queryset(self):
        if self.action == "list":
            filters = BatchFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            return selectors.batch_list(user=self.request.user, **filters.validated_data)
        return selectors.batch_list(user=self.request.user)

    def get_object(self) -> PayrollBatch:
        return selectors.batch_get(user=self.request.user, batch_id=self.kwargs["pk"])

    def _detail(self, batch: PayrollBatch, http_status=status.HTTP_200_OK) -> Response:
        batch = selectors.batch_get(user=self.request.user, batch_id=batch.pk)
        return Response(PayrollBatchDetailSerializer(batch, context={"request": self.request}).data, status=http_status)

    # --- upload -----------------------------------------------------------------------------

    @extend_schema(summary="Upload a payroll file: every line is checked; the answer is the new batch",
                   tags=TAGS, request={"multipart/form-data": UploadSerializer},
                   responses={201: PayrollBatchDetailSerializer, **ACTION_ERRORS})
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def upload(self, request):
        data = UploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        employer = user_organization(request.user)
        if employer is None:
            return _refusal(AccessDenied("账户不属于任何单位 (your account belongs to no employer)", code="no_organization"))
        uploaded = data.validated_data["file"]
        try:
            batch = services.import_payroll_file(
                employer=employer, user=request.user, filename=uploaded.name, data=uploaded,
                now=timezone.now(), hold_invalid_lines=data.validated_data["hold_invalid_lines"],
            )
        except (services.PayrollError, PayrollFileRefused, AccessDenied, OperatorUnavailable) as exc:
            return _refusal(exc)
        return self._detail(batch, status.HTTP_201_CREATED)

    # --- reading --------------------------------------------------------------------------------

    @extend_schema(summary="The lines of a batch (names, IDs and wallets masked)", tags=TAGS,
                   parameters=[OpenApiParameter("with_warnings", OpenApiTypes.BOOL,
                                                description="only the lines with at least one warning")],
                   responses={200: PayrollLineSerializer(many=True), **ERRORS})
    @action(detail=True, methods=["get"])
    def lines(self, request, pk=None):
        batch = self.get_object()
        filters = LineFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.batch_lines(batch=batch, **filters.validated_data))
        return self.get_paginated_response(PayrollLineSerializer(page, many=True).data)

    @extend_schema(summary="One employee's payslip (PDF)", tags=TAGS,
                   responses={(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY), **ERRORS})
    @action(detail=True, methods=["get"], url_path=r"lines/(?P<line_no>\d+)/payslip", url_name="payslip",
            pagination_class=None)
    def payslip(self, request, pk=None, line_no=None):
        from . import payslips

        line = selectors.batch_line(batch=self.get_object(), line_no=line_no)  # 404 for another employer's
        pdf = payslips.payslip_pdf(line=line, now=timezone.now())
        return FileResponse(io.BytesIO(pdf), filename=payslips.payslip_filename(line=line),
                            content_type="application/pdf")

    @extend_schema(summary="The blank payroll template, with the Chinese headers and a header block", tags=TAGS,
                   parameters=[OpenApiParameter("fmt", OpenApiTypes.STR, enum=list(REPORT_TYPES), default="csv")],
                   responses={**SPREADSHEET_RESPONSES, **ERRORS})
    @action(detail=False, methods=["get"], pagination_class=None)
    def template(self, request):
        from . import templates_files

        fmt = request.query_params.get("fmt", "csv")
        if fmt not in REPORT_TYPES:
            return Response({"code": "invalid", "message": "fmt must be csv or xlsx"}, status=status.HTTP_400_BAD_REQUEST)
        data = templates_files.template_csv() if fmt == "csv" else templates_files.template_xlsx()
        return FileResponse(io.BytesIO(data), as_attachment=True, filename=f"payroll-template.{fmt}",
                            content_type=REPORT_TYPES[fmt])

    @extend_schema(summary="Payment progress: lines and amounts paid, failed and left", tags=TAGS,
                   responses={200: ProgressSerializer, **ERRORS})
    @action(detail=True, methods=["get"], pagination_class=None)
    def progress(self, request, pk=None):
        batch = self.get_object()
        if batch.state == BatchState.PAYING:
            services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
            batch.refresh_from_db()
        progress = selectors.progress(batch=batch)
        figures = dict(count=0, amount_fen=0, paid_count=0, paid_fen=0, failed_count=0, failed_fen=0, open_count=0,
                       open_fen=0, done=False)
        if progress is not None:
            figures = dict(count=progress.count, amount_fen=progress.amount_fen, paid_count=progress.paid_count,
                           paid_fen=progress.paid_fen, failed_count=progress.failed_count,
                           failed_fen=progress.failed_fen, open_count=progress.open_count,
                           open_fen=progress.open_fen, done=progress.done)
        return Response(ProgressSerializer({"state": batch.state, **figures}).data)

    @extend_schema(
        summary="The error report: the uploaded file with an error column", tags=TAGS,
        parameters=[OpenApiParameter("fmt", OpenApiTypes.STR, enum=list(REPORT_TYPES), default="csv",
                                     description="csv or xlsx")],
        responses={**SPREADSHEET_RESPONSES, **ERRORS},
    )
    @action(detail=True, methods=["get"], url_path="error-report", pagination_class=None)
    def error_report(self, request, pk=None):
        batch = self.get_object()
        fmt = request.query_params.get("fmt", "csv")
        if fmt not in REPORT_TYPES:
            return Response({"code": "invalid", "message": "fmt must be csv or xlsx"}, status=status.HTTP_400_BAD_REQUEST)
        return FileResponse(services.error_report(batch=batch, fmt=fmt), as_attachment=True,
                            filename=f"payroll-{batch.pk}-errors.{fmt}", content_type=REPORT_TYPES[fmt])

    # --- the workflow ----------------------------------------------------------------------------

    def _run(self, service, **extra) -> Response:
        batch = self.get_object()  # 404 for another employer's batch, before anything else
        try:
            service(batch_id=batch.pk, user=self.request.user, now=timezone.now(), **extra)
        except (services.PayrollError, AccessDenied, TransitionNotAllowed, ConcurrentTransition,
                OperatorUnavailable) as exc:
            return _refusal(exc)
        return self._detail(batch)

    @_action_schema("Submit a checked batch for approval")
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        return self._run(services.submit_batch)

    @_action_schema("Approve a submitted batch (not by whoever prepared it)")
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._run(services.approve_batch)

    @_action_schema("Fund an approved batch: checks the corporate wallet holds the total")
    @action(detail=True, methods=["post"])
    def fund(self, request, pk=None):
        return self._run(services.fund_batch)

    @_action_schema("Pay a funded batch: one transfer per line, in chunks")
    @action(detail=True, methods=["post"])
    def pay(self, request, pk=None):
        response = self._run(services.pay_batch)
        if response.status_code == status.HTTP_200_OK:
            services.finish_batch_if_done(batch_id=int(pk), now=timezone.now())
            return self._detail(self.get_object())
        return response

    @_action_schema("Pause paying: lines not yet sent wait until resumed")
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._run(services.pause_batch)

    @_action_schema("Resume paying a paused batch")
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._run(services.resume_batch)

    @_action_schema("Cancel a batch before paying, with a reason", request=CancelSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        data = CancelSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._run(services.cancel_batch, reason=data.validated_data["reason"])

    @_action_schema("Pay held or failed lines again (each gets a new payment attempt)", request=LineIdsSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        data = LineIdsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        response = self._run(services.retry_lines, line_ids=data.validated_data["line_ids"])
        if response.status_code == status.HTTP_200_OK:
            services.finish_batch_if_done(batch_id=int(pk), now=timezone.now())
            return self._detail(self.get_object())
        return response

    @_action_schema("Return held or failed lines with a reason: they are not paid by this batch",
                    request=ReturnLinesSerializer)
    @action(detail=True, methods=["post"], url_path="return", url_name="return")
    def return_lines(self, request, pk=None):
        data = ReturnLinesSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._run(services.return_lines, line_ids=data.validated_data["line_ids"],
                         reason=data.validated_data["reason"])

    @_action_schema("Close a paid or partially paid batch once no line is held or failed")
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        return self._run(services.close_batch)

    @extend_schema(
        summary="The batch summary receipt: issued on first request, the same receipt afterwards", tags=TAGS,
        request=None, responses={200: SummaryReceiptSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="summary-receipt", url_name="summary-receipt")
    def summary_receipt(self, request, pk=None):
        from . import payslips

        batch = self.get_object()
        if not selectors.can_issue_summary_receipt(user=request.user, batch=batch):
            existing = selectors.summary_receipt(batch=batch)
            if existing is None:
                code = "batch_not_finished" if batch.state not in selectors.SUMMARY_RECEIPT_STATES else "role_required"
                return _refusal(services.PayrollError(
                    "批次尚未发放完成或无权出具回单 (the summary receipt comes once the batch is paid, "
                    "from the employer's operators and approvers)", code))
            receipt = existing
        else:
            try:
                receipt = payslips.batch_summary_receipt(batch=batch, now=timezone.now())
            except services.PayrollError as exc:
                return _refusal(exc)
        return Response(SummaryReceiptSerializer({
            "number": receipt.number, "batch_ref": receipt.batch_ref, "issued_at": receipt.issued_at,
            "verification_code": receipt.verification_code,
            "download_url": reverse("receipts:download", kwargs={"number": receipt.number}),
        }).data)

    # --- payslips ------------------------------------------------------------------------------

    @extend_schema(
        summary="Prepare every payslip of the batch as one zip, built in the background: the same archive while "
                "it is being built, and a ready one again while the payments have not changed", tags=TAGS,
        request=None, responses={202: PayslipArchiveSerializer, 200: PayslipArchiveSerializer, **ACTION_ERRORS},
    )
    # Auditors may ask too (IsAuthenticated, not ReadOnlyForAuditors): an archive only reads the batch.
    @action(detail=True, methods=["post"], url_path="payslip-archives", url_name="payslip-archives",
            permission_classes=[IsAuthenticated], pagination_class=None)
    def payslip_archives(self, request, pk=None):
        from . import payslips

        batch = self.get_object()  # 404 for another employer's batch, before anything else
        try:
            archive = payslips.request_payslip_archive(batch_id=batch.pk, user=request.user, now=timezone.now())
        except (services.PayrollError, AccessDenied) as exc:
            return _refusal(exc)
        archive = selectors.payslip_archive_get(batch=batch, archive_id=archive.pk)  # as the task left it
        in_progress = archive.state in payslips.ACTIVE_ARCHIVE_STATES
        return Response(PayslipArchiveSerializer(archive).data,
                        status=status.HTTP_202_ACCEPTED if in_progress else status.HTTP_200_OK)

    @extend_schema(summary="A payslip archive: its state and progress", tags=TAGS,
                   responses={200: PayslipArchiveSerializer, **ERRORS})
    @action(detail=True, methods=["get"], url_path=r"payslip-archives/(?P<archive_id>\d+)",
            url_name="payslip-archive", pagination_class=None)
    def payslip_archive(self, request, pk=None, archive_id=None):
        archive = selectors.payslip_archive_get(batch=self.get_object(), archive_id=archive_id)
        return Response(PayslipArchiveSerializer(archive).data)

    @extend_schema(summary="Download a ready payslip archive (zip, one PDF per line)", tags=TAGS,
                   responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY), **ACTION_ERRORS})
    @action(detail=True, methods=["get"], url_path=r"payslip-archives/(?P<archive_id>\d+)/download",
            url_name="payslip-archive-download", pagination_class=None)
    def payslip_archive_download(self, request, pk=None, archive_id=None):
        from . import payslips

        batch = self.get_object()
        archive = selectors.payslip_archive_get(batch=batch, archive_id=archive_id)
        try:
            path = payslips.archive_file(archive=archive)
        except services.PayrollError as exc:
            return _refusal(exc)
        return FileResponse(path.open("rb"), as_attachment=True, content_type="application/zip",
                            filename=payslips.payslips_zip_filename(batch=batch))


# ---------------------------------------------------------------------------------------------
# Unions (工会)
# ---------------------------------------------------------------------------------------------

UNION_TAGS = ["payroll unions"]
ARREARS_MONTHS = 3


class UnionMemberSerializer(serializers.ModelSerializer):
    """A member as the union's page shows it: name, resident ID and wallet masked (as payroll lines are)."""

    name = serializers.SerializerMethodField()
    resident_id = serializers.SerializerMethodField()
    wallet_id = serializers.SerializerMethodField()

    class Meta:
        model = UnionMember
        fields = ["id", "employee_no", "name", "resident_id", "wallet_id", "standing_authorisation", "dues_base_fen",
                  "active"]
        read_only_fields = fields

    def get_name(self, obj: UnionMember) -> str:
        return mask_name(obj.name)

    def get_resident_id(self, obj: UnionMember) -> str:
        return mask_resident_id(obj.resident_id)

    def get_wallet_id(self, obj: UnionMember) -> str:
        return mask_wallet_id(obj.wallet_id)


class DuesCallSerializer(serializers.ModelSerializer):
    member_id = serializers.IntegerField(read_only=True)
    employee_no = serializers.CharField(source="member.employee_no", read_only=True)
    name = serializers.SerializerMethodField(help_text="the member's name, masked")
    state = serializers.SerializerMethodField(help_text="the payment's state (transfer state), or not_paid")
    transfer_id = serializers.IntegerField(read_only=True, allow_null=True)
    failure_message = serializers.SerializerMethodField()
    receipt_number = serializers.SerializerMethodField(help_text="the payment's receipt, once settled")

    class Meta:
        model = DuesCall
        fields = ["id", "member_id", "employee_no", "name", "period", "amount_fen", "source", "state", "transfer_id",
                  "failure_message", "receipt_number", "created_at"]
        read_only_fields = fields

    def get_name(self, obj: DuesCall) -> str:
        return mask_name(obj.member.name)

    def get_state(self, obj: DuesCall) -> str:
        return obj.transfer.state if obj.transfer_id else "not_paid"

    def get_failure_message(self, obj: DuesCall) -> str:
        return obj.transfer.failure_message if obj.transfer_id else ""

    def get_receipt_number(self, obj: DuesCall) -> str | None:
        receipt = getattr(obj.transfer, "receipt", None) if obj.transfer_id else None
        return receipt.number if receipt else None


class UnionSerializer(serializers.ModelSerializer):
    union = serializers.CharField(source="union.name", read_only=True)
    employer = serializers.CharField(source="employer.name", read_only=True)
    dues_rate_percent = serializers.SerializerMethodField(help_text='members\' dues rate in percent, e.g. "0.5"')
    funds_rate_percent = serializers.SerializerMethodField(help_text='union funds rate in percent, e.g. "2"')
    grassroots_share_percent = serializers.SerializerMethodField(help_text="share of the funds this union keeps")
    dues_base_components = serializers.ListField(source="base_components", child=serializers.CharField(),
                                                 read_only=True)
    wallet_id = serializers.SerializerMethodField()
    higher_union_wallet_id = serializers.SerializerMethodField()

    class Meta:
        model = UnionSettings
        fields = ["id", "union", "employer", "dues_rate_bp", "dues_rate_percent", "dues_base_components",
                  "funds_rate_bp", "funds_rate_percent", "grassroots_share_bp", "grassroots_share_percent",
                  "dues_in_payroll", "wallet_id", "higher_union_wallet_id"]
        read_only_fields = fields

    def get_dues_rate_percent(self, obj: UnionSettings) -> str:
        return union_rules.percent_text(obj.dues_rate_bp)

    def get_funds_rate_percent(self, obj: UnionSettings) -> str:
        return union_rules.percent_text(obj.funds_rate_bp)

    def get_grassroots_share_percent(self, obj: UnionSettings) -> str:
        return union_rules.percent_text(obj.grassroots_share_bp)

    def get_wallet_id(self, obj: UnionSettings) -> str:
        return mask_wallet_id(obj.wallet.wallet_id)

    def get_higher_union_wallet_id(self, obj: UnionSettings) -> str:
        return mask_wallet_id(obj.higher_union_wallet.wallet_id)


class UnionDetailSerializer(UnionSerializer):
    members = serializers.SerializerMethodField()
    calls = serializers.SerializerMethodField(help_text="dues of the months asked for (default: the last 3 months)")

    class Meta(UnionSerializer.Meta):
        fields = UnionSerializer.Meta.fields + ["members", "calls"]
        read_only_fields = fields

    @extend_schema_field(UnionMemberSerializer(many=True))
    def get_members(self, obj: UnionSettings):
        return UnionMemberSerializer(selectors.union_members(union=obj), many=True).data

    @extend_schema_field(DuesCallSerializer(many=True))
    def get_calls(self, obj: UnionSettings):
        return DuesCallSerializer(selectors.dues_calls(union=obj, periods=self.context["periods"]), many=True).data


class MemberRequestSerializer(serializers.Serializer):
    """A member as the union's operator types it; the resident ID only when adding (it never changes)."""

    employee_no = serializers.CharField(required=False, allow_blank=True, default="")
    name = serializers.CharField()
    resident_id = serializers.CharField(required=False, allow_blank=True, default="")
    wallet_id = serializers.CharField()
    dues_base_fen = serializers.IntegerField(min_value=0, max_value=MAX_AMOUNT_FEN, default=0,
                                             help_text="fixed dues base in fen (0: from pay)")
    standing_authorisation = serializers.BooleanField(default=False)

    def details(self):
        from .members import MemberDetails

        return MemberDetails(**self.validated_data)


class MemberProblemSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="the file's line (header = 1); 0 for one member")
    field = serializers.CharField()
    column = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class MembersErrorSerializer(ErrorSerializer):
    problems = MemberProblemSerializer(many=True)


class MembersImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV in the members template's columns (UTF-8 or GBK)")


class ArrearSerializer(serializers.Serializer):
    member_id = serializers.IntegerField(source="member.pk")
    employee_no = serializers.CharField(source="member.employee_no")
    name = serializers.SerializerMethodField(help_text="the member's name, masked")
    period = serializers.CharField()
    amount_fen = serializers.IntegerField()
    reason = serializers.CharField()

    def get_name(self, obj) -> str:
        return mask_name(obj.member.name)


class DuesCallRequestSerializer(serializers.Serializer):
    period = serializers.RegexField(r"^\d{4}-(0[1-9]|1[0-2])$", help_text="the month, YYYY-MM (not a later month than now)")


class DuesCallResultSerializer(serializers.Serializer):
    period = serializers.CharField()
    created = serializers.IntegerField(help_text="dues created by this call (0: every authorised member already had them)")
    amount_fen = serializers.IntegerField(help_text="total of the dues created")
    calls = DuesCallSerializer(many=True)


class UnionRulesRequestSerializer(serializers.Serializer):
    # Percentages as strings: the service refuses more than two decimals or an out-of-range figure by name.
    dues_rate_percent = serializers.CharField(max_length=12, help_text='members\' dues rate, e.g. "0.5" (0.01-2)')
    dues_base_components = serializers.ListField(
        child=serializers.CharField(max_length=20), allow_empty=True, max_length=10,
        help_text="pay components the dues base counts: basic_wage, allowances, subsidies, bonus, other_pay")
    funds_rate_percent = serializers.CharField(max_length=12, help_text='union funds rate, e.g. "2" (0.01-2)')
    grassroots_share_percent = serializers.CharField(max_length=12,
                                                     help_text='share of the funds this union keeps, e.g. "60" (0-100)')
    dues_in_payroll = serializers.BooleanField(help_text="dues deducted in the payroll run (else: the monthly call)")


class RulesErrorSerializer(ErrorSerializer):
    problems = serializers.DictField(child=serializers.CharField(), help_text="each refused field and its reason")


def _periods(request) -> list[str] | Response:
    """`?periods=YYYY-MM,...` (default: this month and the two before), or a 400 answer."""
    raw = request.query_params.get("periods", "").strip()
    if not raw:
        return recent_periods(timezone.localdate(), ARREARS_MONTHS)
    periods = [p.strip() for p in raw.split(",") if p.strip()]
    if not periods or len(periods) > 36 or not all(PERIOD_RE.match(p) for p in periods):
        return Response({"code": "invalid", "message": "periods: up to 36 months as YYYY-MM, comma-separated"},
                        status=status.HTTP_400_BAD_REQUEST)
    return sorted(set(periods), reverse=True)


PERIODS_PARAMETER = OpenApiParameter(
    "periods", OpenApiTypes.STR, description="months as YYYY-MM, comma-separated (default: this month and the two before)")


@extend_schema_view(
    list=extend_schema(summary="Unions the caller may see (their own, or their employer's)", tags=UNION_TAGS,
                       responses={200: UnionSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="A union: its rules, members (IDs and wallets masked) and dues", tags=UNION_TAGS,
                           parameters=[PERIODS_PARAMETER], responses={200: UnionDetailSerializer, **ERRORS}),
)
class UnionViewSet(JsonErrorsMixin, viewsets.ReadOnlyModelViewSet):
    """Scoped like the union page: the union's and its employer's operators and approvers, auditors and
    administrators (these two read only); anyone else gets 404."""

    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors]
    lookup_value_regex = r"\d+"
    queryset = UnionSettings.objects.none()  # for the schema; requests use get_queryset
    serializer_class = UnionSerializer

    def get_queryset(self):
        return selectors.visible_unions(self.request.user)

    def get_object(self) -> UnionSettings:
        return selectors.union_get(user=self.request.user, union_id=self.kwargs["pk"])

    def retrieve(self, request, pk=None):
        union = self.get_object()
        periods = _periods(request)
        if isinstance(periods, Response):
            return periods
        return Response(UnionDetailSerializer(union, context={"request": request, "periods": periods}).data)

    @extend_schema(summary="Members who owe dues for these months: not paid, or the payment failed",
                   tags=UNION_TAGS, parameters=[PERIODS_PARAMETER],
                   responses={200: ArrearSerializer(many=True), **ERRORS})
    @action(detail=True, methods=["get"], pagination_class=None)
    def arrears(self, request, pk=None):
        union = self.get_object()
        periods = _periods(request)
        if isinstance(periods, Response):
            return periods
        return Response(ArrearSerializer(union_rules.arrears(union_id=union.pk, periods=periods), many=True).data)

    @extend_schema(
        summary="Call a month's dues from every authorised member who has none for it yet (idempotent per member "
                "and month)", tags=UNION_TAGS, request=DuesCallRequestSerializer,
        responses={201: DuesCallResultSerializer, 200: DuesCallResultSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="dues-calls", url_name="dues-calls", pagination_class=None)
    def dues_calls(self, request, pk=None):
        union = self.get_object()  # 404 before anything else
        if not selectors.can_issue_dues_call(user=request.user, union=union):
            return _refusal(AccessDenied("只有工会或本单位的经办、审批人员可以收取会费 (only the union's or the "
                                         "employer's operators and approvers call dues)", code="role_required"))
        data = DuesCallRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        period = data.validated_data["period"]
        if period > period_of(timezone.localdate()):
            return Response({"code": "future_period", "message": "不能收取尚未开始月份的会费 (that month has not begun)"},
                            status=status.HTTP_400_BAD_REQUEST)
        try:
            calls = union_rules.issue_dues_call(union_id=union.pk, period=period, actor=request.user.username,
                                               now=timezone.now())
        except services.PayrollError as exc:  # e.g. the operator does not know a member's wallet
            return Response({"code": exc.code, "message": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except OperatorUnavailable as exc:
            return _refusal(exc)
        fresh = selectors.dues_calls(union=union).filter(pk__in=[c.pk for c in calls])
        body = DuesCallResultSerializer({"period": period, "created": len(calls),
                                         "amount_fen": sum(c.amount_fen for c in calls), "calls": fresh}).data
        return Response(body, status=status.HTTP_201_CREATED if calls else status.HTTP_200_OK)

    # --- members: the union's or its employer's operators; others read them in the union's detail ---------

    def _member(self, union, member_id) -> UnionMember:
        member = union.members.filter(pk=member_id).first()
        if member is None:
            raise NotFound("member not found")
        return member

    def _members_run(self, call) -> Response:
        from .members import MembersRefused

        try:
            return call()
        except (AccessDenied, OperatorUnavailable) as exc:  # the operator checks a member's wallet: 503, not 500
            return _refusal(exc)
        except MembersRefused as exc:
            problems = [{"line": p.line, "field": p.field, "column": p.column, "code": p.code, "message": p.message}
                        for p in exc.problems]
            return Response({"code": exc.code, "message": str(exc), "problems": problems},
                            status=status.HTTP_400_BAD_REQUEST)

    @extend_schema(summary="Add a member (identifiers checked, the wallet with the operator; traced)", tags=UNION_TAGS,
                   request=MemberRequestSerializer,
                   responses={201: UnionMemberSerializer, **ERRORS, 400: MembersErrorSerializer, 503: ErrorSerializer})
    @action(detail=True, methods=["post"], url_path="members", url_name="members", pagination_class=None)
    def add_member(self, request, pk=None):
        from . import members

        union = self.get_object()  # 404 before anything else
        data = MemberRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._members_run(lambda: Response(UnionMemberSerializer(members.add_member(
            union_id=union.pk, user=request.user, details=data.details(), now=timezone.now())).data,
            status=status.HTTP_201_CREATED))

    @extend_schema(summary="Change a member: name, employee number, wallet, dues base, authorisation (not the "
                           "resident ID; traced)", tags=UNION_TAGS, request=MemberRequestSerializer,
                   responses={200: UnionMemberSerializer, **ERRORS, 400: MembersErrorSerializer, 503: ErrorSerializer})
    @action(detail=True, methods=["put"], url_path=r"members/(?P<member_id>\d+)", url_name="member",
            pagination_class=None)
    def change_member(self, request, pk=None, member_id=None):
        from . import members

        member = self._member(self.get_object(), member_id)
        data = MemberRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._members_run(lambda: Response(UnionMemberSerializer(members.update_member(
            member_id=member.pk, user=request.user, details=data.details(), now=timezone.now())).data))

    @extend_schema(summary="Deactivate a member (no more dues) or reactivate one; doing it twice changes nothing",
                   operation_id="v1_payroll_unions_members_active", tags=UNION_TAGS, request=None,
                   responses={200: UnionMemberSerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path=r"members/(?P<member_id>\d+)/(?P<move>deactivate|reactivate)",
            url_name="member-active", pagination_class=None)
    def member_active(self, request, pk=None, member_id=None, move=None):
        from . import members

        member = self._member(self.get_object(), member_id)
        return self._members_run(lambda: Response(UnionMemberSerializer(members.set_member_active(
            member_id=member.pk, user=request.user, active=move == "reactivate", now=timezone.now())).data))

    @extend_schema(summary="Import members from CSV (the template's columns): all or nothing, every problem by line "
                           "and column", tags=UNION_TAGS, request={"multipart/form-data": MembersImportSerializer},
                   responses={201: UnionMemberSerializer(many=True), **ERRORS, 400: MembersErrorSerializer, 503: ErrorSerializer})
    @action(detail=True, methods=["post"], url_path="members/import", url_name="members-import",
            parser_classes=[MultiPartParser, FormParser], pagination_class=None)
    def import_members(self, request, pk=None):
        from . import members

        union = self.get_object()
        data = MembersImportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._members_run(lambda: Response(UnionMemberSerializer(members.import_members(
            union_id=union.pk, user=request.user, data=data.validated_data["file"].read(), now=timezone.now()),
            many=True).data, status=status.HTTP_201_CREATED))

    @extend_schema(summary="Change the union's rules: dues rate and base, funds rate, grassroots share (the union's "
                           "own operators and approvers; each change traced)", tags=UNION_TAGS,
                   request=UnionRulesRequestSerializer,
                   responses={200: UnionSerializer, **ERRORS, 400: RulesErrorSerializer})
    @action(detail=True, methods=["put"], url_path="rules", url_name="rules", pagination_class=None)
    def rules(self, request, pk=None):
        union = self.get_object()  # 404 before anything else
        data = UnionRulesRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            union = union_rules.change_rules(union_id=union.pk, user=request.user, now=timezone.now(),
                                             rules=union_rules.UnionRules.of(values))
        except AccessDenied as exc:
            return _refusal(exc)
        except union_rules.RulesRefused as exc:
            return Response({"code": exc.code, "message": str(exc), "problems": exc.problems},
                            status=status.HTTP_400_BAD_REQUEST)
        return Response(UnionSerializer(selectors.union_get(user=request.user, union_id=union.pk)).data)
