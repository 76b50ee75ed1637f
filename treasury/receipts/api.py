"""REST API for receipts: scoped list/detail/download, and public verification of a PDF."""
from django.conf import settings
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from treasury.access.api_errors import ErrorSerializer

from . import selectors, services
from .models import Receipt

ERRORS = {401: OpenApiResponse(ErrorSerializer, description="not signed in"),
          404: OpenApiResponse(ErrorSerializer, description="no such receipt, or not visible to the caller")}


class ReceiptSerializer(serializers.ModelSerializer):
    transfer_id = serializers.IntegerField(read_only=True, allow_null=True)
    facts = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Receipt
        fields = ["number", "kind", "transfer_id", "batch_ref", "issued_at", "key_id", "pdf_sha256", "pdf_size",
                  "verification_code", "facts", "download_url"]
        read_only_fields = fields

    def get_facts(self, receipt) -> dict:
        return services.key_facts(receipt.payload)

    def get_download_url(self, receipt) -> str:
        request = self.context.get("request")
        url = f"/api/v1/receipts/{receipt.number}/download/"
        return request.build_absolute_uri(url) if request else url


class FindingSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class VerificationSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    receipt_number = serializers.CharField(allow_blank=True)
    reasons = FindingSerializer(many=True)
    notes = FindingSerializer(many=True)
    facts = serializers.DictField()


class VerifyRequestSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The receipt PDF")


class VerifyThrottle(SimpleRateThrottle):
    """Verification is public: limit it per client address so parsing PDFs cannot be used to flood us."""

    scope = "receipt_verify"
    rate = "60/min"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


@extend_schema_view(
    list=extend_schema(summary="Receipts of transfers the user may see", tags=["receipts"],
                       responses={200: ReceiptSerializer(many=True), 401: ERRORS[401],
                                  400: OpenApiResponse(ErrorSerializer, description="limit or offset not a whole number")}),
    retrieve=extend_schema(summary="One receipt", tags=["receipts"], responses={200: ReceiptSerializer, **ERRORS}),
)
class ReceiptViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ReceiptSerializer
    lookup_field = "number"
    lookup_value_regex = r"[RB]\d{18,24}"

    def get_queryset(self):
        queryset = selectors.visible_receipts(self.request.user).order_by("-issued_at", "-id")
        kind = self.request.query_params.get("kind")
        if kind in Receipt.Kind.values:
            queryset = queryset.filter(kind=kind)
        batch_ref = self.request.query_params.get("batch_ref")
        if batch_ref:
            # No batch reference holds a NUL (and PostgreSQL refuses one even as a query's parameter).
            queryset = queryset.filter(batch_ref=batch_ref) if "\x00" not in batch_ref else queryset.none()
        return queryset

    @extend_schema(
        summary="Download the issued PDF",
        tags=["receipts"],
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def download(self, request, number=None):
        receipt = self.get_object()
        path = services.receipt_file(receipt.file_path)
        if not path.exists():
            raise Http404("receipt file missing")
        return FileResponse(path.open("rb"), content_type="application/pdf", as_attachment=True,
                            filename=f"{receipt.number}.pdf")

    @extend_schema(
        summary="Verify a receipt PDF (public)",
        tags=["receipts"],
        request={"multipart/form-data": VerifyRequestSerializer},
        responses={200: VerificationSerializer, 400: OpenApiResponse(ErrorSerializer, description="no file"),
                   429: OpenApiResponse(ErrorSerializer, description="more than 60 a minute from this address")},
    )
    @action(detail=False, methods=["post"], permission_classes=[AllowAny], throttle_classes=[VerifyThrottle],
            parser_classes=[MultiPartParser, FormParser], authentication_classes=[])
    def verify(self, request):
        form = VerifyRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        if upload.size > getattr(settings, "RECEIPT_MAX_UPLOAD_BYTES", 5 * 1024 * 1024):
            result = services.VerificationResult(ok=False, reasons=[services.finding("too_large")])
        else:
            result = services.verify_receipt_pdf(pdf_bytes=upload.read())
        return Response(VerificationSerializer(result.as_dict()).data, status=status.HTTP_200_OK)
