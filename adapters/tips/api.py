"""REST API of the TIPS message log, read-only: /api/v1/tips/messages/.

The list carries no bodies; one message carries its body as the page shows it (read as XML per its declaration,
re-indented, personal data masked; up to `BODY_MAX_BYTES`, `body_truncated` saying when cut).
"""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from adapters.tips import messagelog, selectors
from adapters.tips.messages import MESSAGE_NUMBERS
from adapters.tips.models import TipsMessage
from adapters.tips.views import MESSAGE_ROLES
from treasury.access.api_errors import ErrorSerializer, JsonErrorsMixin
from treasury.access.permissions import API_AUTHENTICATION, roles_permission

BODY_MAX_BYTES = 1024 * 1024
DIRECTIONS = [value for value, _ in TipsMessage.Direction.choices]


class TipsMessageSerializer(serializers.ModelSerializer):
    direction = serializers.CharField(help_text="in (received by the service) or out (sent by it)")
    msg_name = serializers.CharField(read_only=True, help_text="what the message number is, in the request's language")

    class Meta:
        model = TipsMessage
        fields = ["id", "direction", "msg_no", "msg_name", "msg_id", "msg_ref", "key", "peer", "signature_valid", "result",
                  "error_text", "http_status", "duration_ms", "attempt", "body_size", "created_at"]
        read_only_fields = fields


class TipsMessageDetailSerializer(TipsMessageSerializer):
    body_xml = serializers.SerializerMethodField(
        help_text="the message as text, names, wallets and ID numbers masked (the page's download, for auditors and "
                  "administrators, is the message as it travelled)")
    body_truncated = serializers.SerializerMethodField()

    class Meta(TipsMessageSerializer.Meta):
        fields = TipsMessageSerializer.Meta.fields + ["body_xml", "body_truncated"]
        read_only_fields = fields

    def get_body_xml(self, obj: TipsMessage) -> str:
        # Parsed and masked as the page shows it: text between tags as written (CDATA, say) is read as XML reads it.
        return messagelog.shown_body(messagelog.body_bytes(obj), max_bytes=BODY_MAX_BYTES)[0]

    def get_body_truncated(self, obj: TipsMessage) -> bool:
        return obj.body_size > BODY_MAX_BYTES


class MessageFilterSerializer(serializers.Serializer):
    msg_no = serializers.ChoiceField(choices=list(MESSAGE_NUMBERS), required=False)
    direction = serializers.ChoiceField(choices=DIRECTIONS, required=False, allow_blank=True)
    key = serializers.CharField(required=False, allow_blank=True, max_length=64)
    msg_id = serializers.CharField(required=False, allow_blank=True, max_length=20)
    result = serializers.CharField(required=False, allow_blank=True, max_length=8)


ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
MESSAGE_FILTERS = [
    OpenApiParameter("msg_no", OpenApiTypes.STR, enum=list(MESSAGE_NUMBERS), description="only this message number"),
    OpenApiParameter("direction", OpenApiTypes.STR, enum=DIRECTIONS, description="in or out"),
    OpenApiParameter("key", OpenApiTypes.STR, description="business key (or its beginning)"),
    OpenApiParameter("msg_id", OpenApiTypes.STR, description="MsgID or MsgRef"),
    OpenApiParameter("result", OpenApiTypes.STR, description="result code, e.g. 90000, 91005"),
]


@extend_schema_view(
    list=extend_schema(summary="TIPS messages in and out, newest first", tags=["tips"], parameters=MESSAGE_FILTERS,
                       responses={200: TipsMessageSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="One TIPS message with its body", tags=["tips"],
                           responses={200: TipsMessageDetailSerializer, **ERRORS}),
)
class TipsMessageViewSet(JsonErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [roles_permission(*MESSAGE_ROLES)]
    lookup_value_regex = r"\d+"
    queryset = TipsMessage.objects.none()

    def get_serializer_class(self):
        return TipsMessageDetailSerializer if self.action == "retrieve" else TipsMessageSerializer

    def get_queryset(self):
        if self.action == "retrieve":
            return TipsMessage.objects.all()
        filters = MessageFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.message_list(**filters.validated_data)
