"""REST API of the message log (报文日志), read-only: /api/v1/budget/messages/.

The list carries no bodies; one message carries its request and response as the page shows them (read as XML,
re-indented, payees' names and wallets masked; up to `BODY_MAX_BYTES` each, with `*_truncated` saying when cut;
the message page downloads all of it).
"""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from adapters.budget import messagelog, selectors
from adapters.budget.messages import OPERATIONS
from adapters.budget.models import BudgetMessage
from adapters.budget.views import MESSAGE_ROLES
from treasury.access.api_errors import ErrorSerializer, JsonErrorsMixin
from treasury.access.permissions import API_AUTHENTICATION, roles_permission

BODY_MAX_BYTES = 1024 * 1024
OUTCOMES = [value for value, _ in BudgetMessage.Outcome.choices]


class BudgetMessageSerializer(serializers.ModelSerializer):
    outcome = serializers.CharField(help_text="ok, refused (acknowledgement not accepted), fault, unavailable")

    class Meta:
        model = BudgetMessage
        fields = ["id", "operation", "key", "direction", "attempt", "outcome", "code", "error_text", "http_status",
                  "duration_ms", "request_size", "response_size", "created_at"]
        read_only_fields = fields


class BudgetMessageDetailSerializer(BudgetMessageSerializer):
    request_xml = serializers.SerializerMethodField(help_text="the request as sent (UTF-8 text), payees' names and wallets masked")
    request_truncated = serializers.SerializerMethodField()
    response_xml = serializers.SerializerMethodField(help_text="the response as received (UTF-8 text), masked as the request; empty if none")
    response_truncated = serializers.SerializerMethodField()

    class Meta(BudgetMessageSerializer.Meta):
        fields = BudgetMessageSerializer.Meta.fields + ["request_xml", "request_truncated", "response_xml",
                                                        "response_truncated"]
        read_only_fields = fields

    @staticmethod
    def _text(data: bytes) -> str:
        """As text, payees' names and wallets masked (the page's download, for auditors and administrators, is
        the exchange as it travelled)."""
        return messagelog.shown_body(data, max_bytes=BODY_MAX_BYTES)[0]

    def get_request_xml(self, obj: BudgetMessage) -> str:
        return self._text(messagelog.request_bytes(obj))

    def get_request_truncated(self, obj: BudgetMessage) -> bool:
        return obj.request_size > BODY_MAX_BYTES

    def get_response_xml(self, obj: BudgetMessage) -> str:
        return self._text(messagelog.response_bytes(obj))

    def get_response_truncated(self, obj: BudgetMessage) -> bool:
        return obj.response_size > BODY_MAX_BYTES


class MessageFilterSerializer(serializers.Serializer):
    """Query parameters of the list (validated: a wrong value is a 400, not an empty list)."""

    operation = serializers.ChoiceField(choices=list(OPERATIONS), required=False)
    key = serializers.CharField(required=False, allow_blank=True, max_length=128)
    outcome = serializers.ChoiceField(choices=OUTCOMES, required=False)


ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
MESSAGE_FILTERS = [
    OpenApiParameter("operation", OpenApiTypes.STR, enum=list(OPERATIONS), description="only this SOAP operation"),
    OpenApiParameter("key", OpenApiTypes.STR, description="voucher or report number (or its beginning)"),
    OpenApiParameter("outcome", OpenApiTypes.STR, enum=OUTCOMES, description="only messages with this outcome"),
]


@extend_schema_view(
    list=extend_schema(summary="Messages exchanged with the budget-management system, newest first",
                       tags=["budget"], parameters=MESSAGE_FILTERS,
                       responses={200: BudgetMessageSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="One message with its request and response", tags=["budget"],
                           responses={200: BudgetMessageDetailSerializer, **ERRORS}),
)
class BudgetMessageViewSet(JsonErrorsMixin, viewsets.ReadOnlyModelViewSet):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [roles_permission(*MESSAGE_ROLES)]
    lookup_value_regex = r"\d+"
    queryset = BudgetMessage.objects.none()  # for the schema; requests use get_queryset

    def get_serializer_class(self):
        return BudgetMessageDetailSerializer if self.action == "retrieve" else BudgetMessageSerializer

    def get_queryset(self):
        if self.action == "retrieve":
            return BudgetMessage.objects.all()
        filters = MessageFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.message_list(**filters.validated_data)
