"""Pages of the treasury core: the dashboard, the transfers list and a transfer's detail, and for auditors the
ledger (accounts with their balances and the ledger check, an account's entries, their CSV).

Views read the request and the clock, ask `treasury.selectors` (already scoped to the user's
organization) and render; they hold no business rules.
"""
from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_safe

from treasury import selectors
from treasury.access import roles
from treasury.access.decorators import role_required
from treasury.access.labels import transfer_state_choices
from treasury.business_days import BusinessDayField
from treasury.exports import csv_download, yuan
from treasury.models import LedgerAccount, LedgerEntry
from treasury.services.ledger import check_ledger
from treasury.waiting import waiting_for

TRANSFERS_PER_PAGE = 50
ACCOUNTS_PER_PAGE = 50
ENTRIES_PER_PAGE = 50


class TransferFilterForm(forms.Form):
    state = forms.ChoiceField(
        label=_("State"), required=False, choices=[("", _("All states"))] + transfer_state_choices()
    )
    created_date = BusinessDayField(label=_("Date"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    batch_ref = forms.CharField(label=_("Batch"), required=False, max_length=80)


def filter_query(request) -> str:
    """The page's query without its page number, for the pagination links (every list page's)."""
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


class DayForm(forms.Form):
    day = BusinessDayField(required=False)


@require_safe
@login_required
def dashboard(request):
    # A day that is not one (or out of range) shows today, as the page has no field to say so in.
    form = DayForm(request.GET)
    day = (form.cleaned_data["day"] if form.is_valid() else None) or timezone.localdate()
    summary = selectors.dashboard_summary(user=request.user, day=day)
    return render(request, "treasury/dashboard.html", {
        "summary": summary, "is_today": day == timezone.localdate(), "waiting": waiting_for(request.user)})


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
    return render(request, "treasury/transfer_list.html",
                  {"form": form, "page": page, "filter_query": filter_query(request)})


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
            "can_read_ledger": roles.has_role(request.user, roles.AUDITOR, roles.ADMIN),
        },
    )


class LedgerFilterForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), required=False, choices=[("", _("All kinds")), *LedgerAccount.Kind.choices])
    q = forms.CharField(label=_("Code, name or wallet id"), required=False, max_length=64)


class EntryFilterForm(forms.Form):
    posted_from = BusinessDayField(label=_("Posted from"), required=False,
                                   widget=forms.DateInput(attrs={"type": "date"}))
    posted_to = BusinessDayField(label=_("to"), required=False, widget=forms.DateInput(attrs={"type": "date"}))


@require_safe
@login_required
@role_required(roles.AUDITOR)
def ledger_account_list(request):
    """Every ledger account with its balance, the balances per kind, and the ledger check on request (it reads
    every entry: set-based SQL, seconds at millions of entries, so not on every visit)."""
    form = LedgerFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    accounts = selectors.ledger_accounts(kind=filters.get("kind", ""), search=filters.get("q", ""))
    totals = selectors.ledger_totals_by_kind()
    return render(request, "treasury/ledger_account_list.html", {
        "form": form, "page": Paginator(accounts, ACCOUNTS_PER_PAGE).get_page(request.GET.get("page")),
        "totals": totals, "total_balance_fen": sum(t.balance_fen for t in totals),
        "report": check_ledger() if request.GET.get("check") == "1" else None, "report_time": timezone.now(),
        "filter_query": filter_query(request)})


def _account_and_days(request, account_id: int):
    """The account (404 if none), the days form, and the days it chose as `ledger_entries` takes them."""
    account = selectors.ledger_account_get(account_id=account_id)
    form = EntryFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    return account, form, {"posted_from": filters.get("posted_from"), "posted_to": filters.get("posted_to")}


@require_safe
@login_required
@role_required(roles.AUDITOR)
def ledger_account_detail(request, account_id: int):
    """An account's entries, newest first, each with the balance right after it."""
    account, form, days = _account_and_days(request, account_id)
    entries = selectors.ledger_entries(account=account, **days)
    page = Paginator(entries, ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    selectors.with_balance_after(account=account, entries=page.object_list)
    return render(request, "treasury/ledger_account_detail.html", {
        "account": account, "form": form, "page": page, "filter_query": filter_query(request)})


LEDGER_CSV_HEADER = ["记账时间 posted at", "转账 transfer", "类别 kind", "金额(元) amount", "记账后余额(元) balance after",
                     "批次 batch", "来源单据 source document"]


@require_safe
@login_required
@role_required(roles.AUDITOR)
def ledger_account_csv(request, account_id: int):
    """An account's entries in the chosen days as CSV, oldest first with the running balance, streamed."""
    account, _, days = _account_and_days(request, account_id)
    kinds = dict(LedgerEntry.Kind.choices)
    rows = ([f"{timezone.localtime(posted_at):%Y-%m-%d %H:%M:%S}", transfer_id, kinds.get(kind, kind), yuan(amount),
             yuan(balance), batch, source]
            for posted_at, transfer_id, kind, amount, balance, batch, source in selectors.ledger_export_rows(
                account=account, **days))
    # Named by the account's number here, not its code, which holds the whole wallet id (pages mask it).
    return csv_download(filename=f"ledger-account-{account.pk}.csv", header=LEDGER_CSV_HEADER, rows=rows)
