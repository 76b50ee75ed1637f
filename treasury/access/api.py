"""Who am I, and a token for API clients."""
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .api_errors import ErrorSerializer, JsonErrorsMixin
from .login_lock import current_lock, lock_message
from .permissions import API_AUTHENTICATION, ReadOnlyForAuditors
from .roles import user_roles, is_read_only
from .scoping import sees_all_organizations, user_organization


class MeOrganizationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    org_type = serializers.CharField()
    uscc = serializers.CharField()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    full_name = serializers.CharField()
    organization = MeOrganizationSerializer(allow_null=True)
    roles = serializers.ListField(child=serializers.CharField())
    sees_all_organizations = serializers.BooleanField()
    read_only = serializers.BooleanField(help_text="true for auditors: they may read and never write")


class MeView(JsonErrorsMixin, APIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [ReadOnlyForAuditors]

    @extend_schema(summary="The calling user, their organization and roles", tags=["access"],
                   responses={200: MeSerializer, 401: ErrorSerializer, 403: ErrorSerializer})
    def get(self, request):
        user = request.user
        org = user_organization(user)
        data = {
            "username": user.get_username(),
            "full_name": user.get_full_name(),
            "organization": org,
            "roles": sorted(user_roles(user)),
            "sees_all_organizations": sees_all_organizations(user),
            "read_only": is_read_only(user),
        }
        return Response(MeSerializer(data).data)


class TokenObtainView(JsonErrorsMixin, ObtainAuthToken):
    """Exchange a username and password for the user's API token (send it as `Authorization: Token <key>`)."""

    permission_classes = [AllowAny]
    authentication_classes = []  # credentials are in the body; no session, so no CSRF on this call

    @extend_schema(
        summary="Obtain an API token",
        tags=["access"],
        request=inline_serializer("TokenRequest", {"username": serializers.CharField(),
                                                   "password": serializers.CharField(style={"input_type": "password"})}),
        responses={200: inline_serializer("TokenResponse", {"token": serializers.CharField()}), 400: ErrorSerializer,
                   429: ErrorSerializer},
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except exceptions.ValidationError:
            # Locked (login_lock), by this attempt or before it: say so, and when to try again.
            until = current_lock(request.data.get("username") if hasattr(request.data, "get") else None)
            if until:
                raise exceptions.Throttled(wait=(until - timezone.now()).total_seconds(),
                                           detail=lock_message(until)) from None
            raise
