"""The union's rules page: its own operators and approvers change the dues rate and base, the funds rate
and the grassroots share; whoever sees the union reads them. One service call (`union.change_rules`)."""
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from treasury.access.decorators import writable_required

from . import selectors
from . import union as union_rules
from .forms import UnionRulesForm

# The service's field names and the form's.
FORM_FIELDS = {"dues_rate_bp": "dues_rate_percent", "funds_rate_bp": "funds_rate_percent",
               "grassroots_share_bp": "grassroots_share_percent", "dues_base_components": "dues_base_components"}


def _percent(basis_points: int) -> Decimal:
    return (Decimal(basis_points) / 100).normalize()


@require_http_methods(["GET", "POST"])
@login_required
@writable_required
def union_rules_page(request, union_id: int):
    union = selectors.union_get(user=request.user, union_id=union_id)  # 404 for anyone who may not see it
    can_change = union_rules.may_change_rules(user=request.user, union=union)
    form = UnionRulesForm(request.POST or None, initial={
        "dues_rate_percent": _percent(union.dues_rate_bp), "dues_base_components": union.base_components,
        "funds_rate_percent": _percent(union.funds_rate_bp),
        "grassroots_share_percent": _percent(union.grassroots_share_bp), "dues_in_payroll": union.dues_in_payroll,
    })
    if not can_change:
        for field in form.fields.values():
            field.disabled = True  # shown, not editable
    status = 200
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied("仅工会本单位的经办人、复核人可修改规则 (only the union's own operators and approvers "
                                   "change its rules)")
        if form.is_valid():
            data = form.cleaned_data
            try:
                union_rules.change_rules(union_id=union.pk, user=request.user, now=timezone.now(),
                                         rules=union_rules.UnionRules.of(data))
            except union_rules.RulesRefused as exc:
                for field, message in exc.problems.items():
                    form.add_error(FORM_FIELDS[field], message)
            else:
                messages.success(request, _("The union's rules are saved."))
                return redirect("payroll:union-detail", union_id=union.pk)
        status = 400
    return render(request, "payroll/union_rules.html", {"union": union, "form": form, "can_change": can_change},
                  status=status)
