"""REST framework permissions: scoping happens in the querysets; these guard what a role may do."""
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission

from .errors import ReadOnlyRole
from .roles import has_role, is_read_only


class ReadOnlyForAuditors(BasePermission):
    """Signed-in users only; auditors may read and never write."""

    message = str(ReadOnlyRole())
    code = "read_only_role"

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or not is_read_only(user)


def roles_permission(*roles: str) -> type[BasePermission]:
    """A permission class that admits users holding one of `roles` (admin always passes)."""

    class HasRole(BasePermission):
        message = "没有所需角色 (you do not hold the role this needs)"
        code = "role_required"

        def has_permission(self, request, view) -> bool:
            return bool(request.user and request.user.is_authenticated and has_role(request.user, *roles, "admin"))

    HasRole.__name__ = "HasRole_" + "_".join(roles)
    return HasRole


# Token first: an unauthenticated API call then answers 401 with `WWW-Authenticate: Token`
# (DRF takes the challenge from the first class; session first would answer 403 without one).
API_AUTHENTICATION = [TokenAuthentication, SessionAuthentication]
