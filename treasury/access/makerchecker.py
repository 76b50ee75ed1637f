"""Maker-checker: whoever prepared a thing cannot approve it. Every domain calls this one helper."""
from .errors import AccessDenied, MakerCheckerViolation
from .roles import has_role


def ensure_can_approve(*, approver, prepared_by_id: int | None, approver_roles: tuple[str, ...], also_not: tuple = ()) -> None:
    """Raise unless `approver` holds one of `approver_roles` and neither prepared the item nor
    appears in `also_not` (user ids of earlier approvers, for a second approval).

    Raises:
        AccessDenied: the approver lacks the role.
        MakerCheckerViolation: the approver prepared it or approved it already.
    """
    if not has_role(approver, *approver_roles):
        raise AccessDenied(
            "没有审批权限 (you do not hold an approving role for this)", code="not_an_approver"
        )
    if prepared_by_id is not None and approver.pk == prepared_by_id:
        raise MakerCheckerViolation()
    if approver.pk in set(also_not):
        raise MakerCheckerViolation("同一人不能审批两次 (the same person cannot approve twice)")
