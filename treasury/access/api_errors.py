"""API errors as JSON with a code an API client can act on and a message a person can read:

    {"code": "not_found", "message": "...", "details": {...}}   (details only for field errors)

Wire it for every API view with REST_FRAMEWORK["EXCEPTION_HANDLER"] =
"treasury.access.api_errors.api_exception_handler"; `JsonErrorsMixin` applies it per view.
"""
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from treasury.identifiers import InvalidIdentifier

from .errors import AccessDenied

_CODES_BY_TYPE = (
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "authentication_failed"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.Throttled, "throttled"),
    (exceptions.ParseError, "parse_error"),
    (exceptions.ValidationError, "invalid"),
)


def _first_code(detail) -> str | None:
    """The code DRF attached to the first error detail (e.g. a permission's own `code`)."""
    if isinstance(detail, exceptions.ErrorDetail):
        return detail.code
    if isinstance(detail, list) and detail:
        return _first_code(detail[0])
    if isinstance(detail, dict) and detail:
        return _first_code(next(iter(detail.values())))
    return None


def api_exception_handler(exc, context):
    # Our own domain errors carry their code; they are the user's problem, never a 500.
    if isinstance(exc, AccessDenied):
        return Response({"code": exc.code, "message": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, InvalidIdentifier):
        return Response({"code": exc.code, "message": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug stays loud
    generic = next((code for kind, code in _CODES_BY_TYPE if isinstance(exc, kind)), "error")
    detail = getattr(exc, "detail", None)
    code = generic
    specific = _first_code(detail)
    if isinstance(exc, exceptions.PermissionDenied) and specific and specific != "permission_denied":
        code = specific
    if isinstance(exc, exceptions.ValidationError):
        body = {"code": code, "message": "请求数据有误 (the request has invalid fields)", "details": detail}
    else:
        body = {"code": code, "message": str(detail) if isinstance(detail, str) else str(exc)}
    response.data = body
    return response


class ErrorSerializer(serializers.Serializer):
    """The shape of every API error (for the OpenAPI schema)."""

    code = serializers.CharField(help_text="machine-readable error code")
    message = serializers.CharField(help_text="message for people")
    details = serializers.DictField(required=False, help_text="field errors, for invalid requests")


class JsonErrorsMixin:
    # The JSON error format on this view, whatever the project setting says. (A comment, not a docstring: the
    # OpenAPI schema takes a view's docstring, inherited ones too, as each operation's description.)

    def get_exception_handler(self):
        return api_exception_handler


@csrf_exempt  # it changes nothing: a POST to no route is a 404 too, not a CSRF refusal
def api_not_found(request, *args, **kwargs):
    """Any /api/v1/ address no route takes (an id that is not a number, a misspelt action): the API's JSON 404,
    as the schema promises, not the site's HTML page. Only addresses ending in a slash: one without still
    gets APPEND_SLASH's redirect when the address with the slash is a route."""
    return JsonResponse({"code": "not_found", "message": str(exceptions.NotFound.default_detail)}, status=404)
