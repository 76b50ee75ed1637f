"""Guards for views: a role is required; auditors never change anything.

    @login_required
    @role_required(roles.FINANCE_CLERK, roles.FINANCE_APPROVER)
    def voucher_list(request): ...

    @writable_required          # on views that accept POST
    def approve(request, pk): ...
"""
from functools import wraps

from django.core.exceptions import PermissionDenied

from .errors import ReadOnlyRole
from .roles import has_role, is_read_only

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def role_required(*roles: str):
    """403 unless the user holds one of `roles` (admin always passes)."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated or not has_role(request.user, *roles, "admin"):
                raise PermissionDenied()  # the 403 page says it: the role does not give this page
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def writable_required(view):
    """403 for read-only roles (auditors) on anything but GET/HEAD/OPTIONS."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method not in SAFE_METHODS and is_read_only(request.user):
            raise PermissionDenied(str(ReadOnlyRole()))
        return view(request, *args, **kwargs)

    return wrapped
