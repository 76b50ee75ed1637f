"""Trace API: the path of a transfer, a wallet or a source document, scoped to the caller
(another organization's transfer answers 404, like one that does not exist), and verification
of the whole trace for auditors and administrators."""
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from treasury import identifiers, keys
from treasury.access.api_errors import ErrorSerializer, JsonErrorsMixin
from treasury.access.permissions import ReadOnlyForAuditors, roles_permission
from treasury.access.roles import AUDITOR
from treasury.money import fen_to_yuan_str

from . import selectors
from .models import TraceCheckpoint
from .verification import verify_trace

ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="not signed in"),
    403: OpenApiResponse(ErrorSerializer, description="not allowed"),
    404: OpenApiResponse(ErrorSerializer, description="not found, or not visible to the caller"),
}
PAGE_ERROR = OpenApiResponse(ErrorSerializer, description="limit or offset not a whole number")


class EventDetailSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="the key as stored in the event's data")
    label = serializers.CharField(help_text="the key in words, in the request's language")
    value = serializers.CharField(help_text="the value in words: amounts in yuan, yes / no, lists joined")


class TimelineEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    stream_key = serializers.CharField(help_text="the hash chain this event belongs to (a batch or a document)")
    seq = serializers.IntegerField(help_text="position in the stream, from 1, without gaps")
    kind = serializers.CharField(help_text='e.g. "transfer.created", "transfer.settled", "payroll.batch.approved"')
    kind_label = serializers.CharField(help_text="the kind in words, in the request's language (Accept-Language)")
    subject_type = serializers.CharField()
    subject_id = serializers.CharField()
    subject_label = serializers.CharField(help_text="what the subject type is, in the request's language")
    transfer_id = serializers.IntegerField(allow_null=True, help_text="set when the event is about a transfer")
    source_ref = serializers.CharField()
    actor = serializers.CharField(help_text='a username, or "system", "operator", "tips", "budget-system"')
    actor_label = serializers.CharField(help_text="the actor in words where it is not a person")
    amount_fen = serializers.IntegerField(allow_null=True)
    data = serializers.DictField(help_text="event details, personal data masked")
    details = EventDetailSerializer(many=True, help_text="the same details as the page shows them, in stored order")
    occurred_at = serializers.DateTimeField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()
    chain_status = serializers.ChoiceField(
        choices=[selectors.CHAIN_OK, selectors.CHAIN_ALTERED, selectors.CHAIN_BROKEN, selectors.CHAIN_GAP],
        help_text="ok: content matches its hash and links to its predecessor",
    )
    checkpointed = serializers.BooleanField(help_text="covered by a signed checkpoint")


class TracedTransferSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    idempotency_key = serializers.CharField()
    state = serializers.CharField()
    amount_fen = serializers.IntegerField()
    amount_yuan = serializers.SerializerMethodField()
    payer_wallet_id = serializers.CharField(source="payer_wallet_masked", help_text="masked")
    payer_name = serializers.CharField(help_text="masked for persons")
    payee_wallet_id = serializers.CharField(source="payee_wallet_masked", help_text="masked")
    payee_name = serializers.CharField(help_text="masked for persons")
    organization = serializers.CharField()
    batch_ref = serializers.CharField()
    source_ref = serializers.CharField()
    created_at = serializers.DateTimeField()
    settled_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(OpenApiTypes.STR)
    def get_amount_yuan(self, obj) -> str:
        return fen_to_yuan_str(obj.amount_fen)


class PayeeTotalSerializer(serializers.Serializer):
    wallet_id = serializers.CharField(source="wallet_masked", help_text="masked")
    name = serializers.CharField(help_text="masked for persons")
    transfer_count = serializers.IntegerField()
    amount_fen = serializers.IntegerField()


class TracePathSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="transfer, wallet or document")
    key = serializers.CharField(help_text="transfer id, wallet id (masked) or document reference")
    intact = serializers.BooleanField(help_text="every event listed has chain status ok")
    shows_documents = serializers.BooleanField(help_text="document events (not only transfer events) are included")
    transfer_count = serializers.IntegerField()
    transfer_total_fen = serializers.IntegerField()
    transfers_truncated = serializers.BooleanField()
    events_truncated = serializers.BooleanField()
    events = TimelineEventSerializer(many=True)
    transfers = TracedTransferSerializer(many=True)
    payees = PayeeTotalSerializer(many=True, help_text="where the money went, by payee wallet")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.kind == "wallet":
            data["key"] = identifiers.mask_wallet_id(instance.key)
        return data


class _PathView(JsonErrorsMixin, APIView):
    permission_classes = [ReadOnlyForAuditors]
    serializer_class = TracePathSerializer


class TransferTraceView(_PathView):
    @extend_schema(summary="The trace of one transfer", tags=["trace"], responses={200: TracePathSerializer, **ERRORS})
    def get(self, request, transfer_id: int):
        return Response(TracePathSerializer(selectors.transfer_path(user=request.user, transfer_id=transfer_id)).data)


class WalletTraceView(_PathView):
    @extend_schema(summary="Transfers into and out of a wallet, with their events", tags=["trace"],
                   responses={200: TracePathSerializer, **ERRORS})
    def get(self, request, wallet_id: str):
        return Response(TracePathSerializer(selectors.wallet_path(user=request.user, wallet_id=wallet_id)).data)


class DocumentTraceView(_PathView):
    @extend_schema(summary="The trace of a source document or batch (its source ref or batch ref)", tags=["trace"],
                   responses={200: TracePathSerializer, **ERRORS})
    def get(self, request, ref: str):
        return Response(TracePathSerializer(selectors.document_path(user=request.user, ref=ref)).data)


class TraceSearchResultSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="transfer, wallet or document")
    key = serializers.CharField()
    url = serializers.CharField(help_text="the API resource of this trace")


class TraceSearchView(JsonErrorsMixin, APIView):
    permission_classes = [ReadOnlyForAuditors]
    serializer_class = TraceSearchResultSerializer

    @extend_schema(
        summary="What a transfer id, idempotency key, wallet id, batch ref or source ref names", tags=["trace"],
        parameters=[OpenApiParameter("q", OpenApiTypes.STR, required=True)],
        responses={200: TraceSearchResultSerializer, **ERRORS},
    )
    def get(self, request):
        found = selectors.resolve_query(user=request.user, query=request.query_params.get("q", ""))
        if found is None:
            raise Http404("nothing visible matches")
        kind, key = found
        segment = {"transfer": "transfers", "wallet": "wallets", "document": "documents"}[kind]
        return Response({"kind": kind, "key": key, "url": f"/api/v1/trace/{segment}/{key}/"})


class TraceProblemSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="event_altered, events_missing, link_broken, head_mismatch, ...")
    message = serializers.CharField()
    stream_key = serializers.CharField()
    seq = serializers.IntegerField(allow_null=True)
    event_id = serializers.IntegerField(allow_null=True)
    checkpoint = serializers.IntegerField(allow_null=True, help_text="checkpoint number")


class VerificationReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    summary = serializers.CharField()
    streams = serializers.IntegerField()
    events = serializers.IntegerField()
    checkpoints = serializers.IntegerField()
    checkpoint_heads = serializers.IntegerField()
    latest_checkpoint = serializers.IntegerField(allow_null=True)
    latest_root = serializers.CharField()
    problem_count = serializers.IntegerField()
    problems = TraceProblemSerializer(many=True, help_text="at most max_problems of them")

    def to_representation(self, report):
        data = super().to_representation(report)
        data["summary"] = report.summary()
        data["problems"] = [p.as_dict() for p in report.problems]
        return data


class VerifyTraceView(JsonErrorsMixin, APIView):
    permission_classes = [roles_permission(AUDITOR)]
    serializer_class = VerificationReportSerializer

    @extend_schema(
        summary="Verify the whole trace (or one stream) now; auditors and administrators", tags=["trace"],
        parameters=[
            OpenApiParameter("stream", OpenApiTypes.STR, description="verify only this stream"),
            OpenApiParameter("max_problems", OpenApiTypes.INT, description="list at most this many (default 1000)"),
        ],
        responses={200: VerificationReportSerializer, **ERRORS},
    )
    def get(self, request):
        try:
            max_problems = max(1, min(int(request.query_params.get("max_problems", 1000)), 10_000))
        except ValueError:
            max_problems = 1000
        stream = request.query_params.get("stream") or None
        if stream is not None and "\x00" in stream:  # no stream key holds a NUL (PostgreSQL refuses one in a query)
            raise serializers.ValidationError({"stream": ["不是流的键 (not a stream key)"]})
        report = verify_trace(stream_key=stream, max_problems=max_problems)
        return Response(VerificationReportSerializer(report).data)


class CheckpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = TraceCheckpoint
        fields = ["number", "created_at", "stream_count", "event_count", "merkle_root", "changed_count",
                  "changed_root", "prev_body_hash", "key_id", "signature"]
        read_only_fields = fields


class CheckpointListView(JsonErrorsMixin, ListAPIView):
    """Signed checkpoints, newest first, with the service's public key id: anyone holding the
    public key can check a signature (see /api/v1/trace/public-key/)."""

    permission_classes = [roles_permission(AUDITOR)]
    serializer_class = CheckpointSerializer
    queryset = TraceCheckpoint.objects.order_by("-number")

    @extend_schema(summary="Signed trace checkpoints, newest first", tags=["trace"],
                   responses={200: CheckpointSerializer(many=True), 400: PAGE_ERROR, 401: ERRORS[401], 403: ERRORS[403]})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class PublicKeyView(JsonErrorsMixin, APIView):
    permission_classes = [ReadOnlyForAuditors]

    @extend_schema(
        summary="The service's Ed25519 public key (checkpoint and receipt signatures)", tags=["trace"],
        responses={200: OpenApiTypes.OBJECT, 401: ERRORS[401]},
    )
    def get(self, request):
        return Response({"key_id": keys.key_id(), "public_key_pem": keys.public_key_pem()})
