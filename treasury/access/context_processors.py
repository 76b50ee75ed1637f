from .navigation import nav_sections
from .roles import ROLE_LABELS, user_roles
from .scoping import sees_all_organizations, user_organization


def navigation(request):
    """Navigation and who-am-I for every page (empty for anonymous visitors)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_sections": [], "current_role_labels": [], "current_organization": None}
    roles = sorted(user_roles(user))
    return {
        "nav_sections": nav_sections(user, current_path=request.path),
        "current_role_labels": [str(ROLE_LABELS.get(r, r)) for r in roles],
        "current_organization": user_organization(user),
        "sees_all_organizations": sees_all_organizations(user),
    }
