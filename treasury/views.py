"""Pages of the treasury core: the dashboard, the transfers list and a transfer's detail.

Views read the request and the clock, ask `treasury.selectors` (already scoped to the user's
organization) and render; they hold no business rules.
"""
import datetime as dt

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_safe

from treasury import selectors
from treasury.access.labels import transfer_state_choices

TRANSFERS_PER_PAGE = 50


class TransferFilterForm(forms.Form):
    state = forms.ChoiceField(
        label=_("State"), required=False, choices=[("", _("All states"))] + transfer_state_choices()
    )
    created_date = forms.DateField(label=_("Date"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    batch_ref = forms.CharField(label=_("Batch"), required=False, max_length=80)


def _parse_day(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


@require_safe
@login_required
def dashboard(request):
    day = _parse_day(request.GET.get("day")) or timezone.localdate()
    summary = selectors.dashboard_summary(user=request.user, day=day)
    return render(request, "treasury/dashboard.html", {"summary": summary, "is_today": day == timezone.localdate()})


@require_safe
@login_required
def transfer_list(request):
    form = TransferFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    transfers = selectors.transfer_list(
        user=request.user,
        state=filters.get("state", ""),
        created_date=filters.get("created_date"),
        batch_ref=filters.get("batch_ref", ""),
    )
    page = Paginator(transfers, TRANSFERS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "treasury/transfer_list.html",
        {"form": form, "page": page, "filter_query": query.urlencode()},
    )


@require_safe
@login_required
def transfer_detail(request, transfer_id: int):
    transfer = selectors.transfer_get(user=request.user, transfer_id=transfer_id)
    receipt = selectors.transfer_receipt(transfer=transfer)
    return render(
        request,
        "treasury/transfer_detail.html",
        {
            "transfer": transfer,
            "entries": selectors.transfer_entries(transfer=transfer),
            "receipt": receipt,
            "receipt_url": reverse("receipts:download", kwargs={"number": receipt.number}) if receipt else None,
            "trace_url": reverse("trace:transfer", kwargs={"transfer_id": transfer.pk}),
        },
    )
