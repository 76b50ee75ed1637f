"""Tax pages for tax staff (auditors and administrators read them): three-party agreements (list, sign,
detail with history and the state changes), deductions, batch packages with live progress and their
2102 result, the daily treasury entry report (CSV too), and a tax paid by an individual at the counter.

Views read the request and the clock, ask `tax.selectors` (already scoped: another tax authority's
agreement or package is a 404) and call one service per action; a refusal becomes a message or a
form error on the page, never a 500.
"""
from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from treasury import identifiers
from treasury.access import roles
from treasury.access.decorators import role_required, writable_required
from treasury.access.errors import AccessDenied
from treasury.access.scoping import sees_all_organizations, user_organization
from treasury.identifiers import mask_name, mask_resident_id, mask_wallet_id
from treasury.exports import csv_bytes, csv_download, download, yuan
from treasury.money import format_yuan
from treasury.receipts.selectors import downloadable_receipt_numbers
from treasury.services.transfers import OperatorUnavailable
from treasury.views import filter_query

from . import documents, selectors, services
from .forms import (
    AGREEMENT_ACTIONS, REASON_ACTIONS, AgreementFilterForm, DeductionFilterForm, EntrustDatesForm, EntryReportForm,
    MyTaxForm, OwnTaxForm, PackageFilterForm, ReasonForm, RefundFilterForm, SignAgreementForm,
)
from .models import AgreementState, DeductionKind, DeductionState, PackageState, TaxpayerKind
from .models import RefundOrderState, RefundState

AGREEMENTS_PER_PAGE = 50
DEDUCTIONS_PER_PAGE = 100
PACKAGES_PER_PAGE = 50
REVERSALS_PER_PAGE = 100
STOP_PAYMENTS_PER_PAGE = 50
READ_ROLES = selectors.READ_ROLES
BUDGET_LEVELS = {"0": "共享 (shared)", "1": "中央 (central)", "2": "省 (province)", "3": "市 (city)",
                 "4": "县 (county)", "5": "乡 (township)"}
BUDGET_TYPES = {"1": "预算内 (in budget)", "2": "预算外 (outside budget)"}
_ACTION_DONE = {
    "activate": gettext_lazy("The agreement is active."),
    "suspend": gettext_lazy("The agreement is suspended."),
    "resume": gettext_lazy("The agreement is active again."),
    "revoke": gettext_lazy("The agreement is revoked."),
}
_SERVICES = {
    "activate": services.activate_agreement, "suspend": services.suspend_agreement,
    "resume": services.resume_agreement, "revoke": services.revoke_agreement,
}


# The form field a service refusal is about (by its code), so that the page says it next to that field.
_FIELD_OF_REFUSAL = {
    "holder_mismatch": "taxpayer_name", "holder_unverified": "wallet_id", "wallet_not_found": "wallet_id",
    "not_personal": "wallet_id", "not_your_wallet": "wallet_id", "idempotency_conflict": "tax_vou_no",
    "tax_vou_no": "tax_vou_no", "amount": "amount", "unknown_tax_authority": "tax_org_code",
}


def add_refusal(form, exc: Exception) -> None:
    """A service's refusal on the form: under the field it is about, or above the form. An identifier's own
    check (identifiers.InvalidIdentifier's codes) is about the resident ID or the wallet id, as its message says."""
    code = getattr(exc, "code", "")
    field = _FIELD_OF_REFUSAL.get(code) or ("wallet_id" if code.startswith("wallet") else
                                             "taxpayer_id" if code.startswith("id_") else None)
    form.add_error(field if field in form.fields else None, refusal_message(exc))


def refusal_message(exc: Exception) -> str:
    """What the page says when a service refuses (its own text is the API's too, so it stays as it is)."""
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        return _("The agreement's state does not allow this; the page shows what it is now.")
    if isinstance(exc, OperatorUnavailable):
        return _("The operator cannot be reached; nothing was recorded. Please try again later: %(error)s") % {
            "error": exc}
    return str(exc)


# ---------------------------------------------------------------------------------------------
# What a page or the API shows of a row: personal data masked
# ---------------------------------------------------------------------------------------------


def _is_person_id(taxpayer_id: str) -> bool:
    """A person's number unless it is an organization's credit code only. A resident ID is asked first: one in
    fifty (all digits, "11..." like Beijing's) passes the credit code's checks too, and was shown whole."""
    try:
        identifiers.validate_resident_id(taxpayer_id)
        return True
    except identifiers.InvalidIdentifier:
        pass
    try:
        identifiers.validate_uscc(taxpayer_id)
    except identifiers.InvalidIdentifier:
        return True  # not an organization's code (or none): treat as personal data
    return False


def shown_agreement(agreement) -> dict:
    person = agreement.taxpayer_kind == TaxpayerKind.PERSON
    return {
        "taxpayer_name": mask_name(agreement.taxpayer_name) if person else agreement.taxpayer_name,
        "taxpayer_id": mask_resident_id(agreement.taxpayer_id) if person else agreement.taxpayer_id,
        "wallet_id": mask_wallet_id(agreement.wallet.wallet_id),
    }


def shown_deduction(deduction) -> dict:
    """A deduction's taxpayer and wallet as pages, the API and exports show them: a person's name and ID
    masked. The tax system's deduction messages carry no taxpayer ID: the agreement's is shown."""
    agreement = deduction.agreement if deduction.agreement_id else None
    return _shown_taxpayer(kind=deduction.kind, taxpayer_id=deduction.taxpayer_id, tax_pay_name=deduction.tax_pay_name,
                           pay_acct=deduction.pay_acct, agreement_kind=agreement and agreement.taxpayer_kind,
                           agreement_taxpayer_id=agreement and agreement.taxpayer_id)


def _shown_taxpayer(*, kind: str, taxpayer_id: str, tax_pay_name: str, pay_acct: str, agreement_kind: str | None,
                    agreement_taxpayer_id: str | None) -> dict:
    """`shown_deduction` from the columns themselves (an export reads rows, not model instances)."""
    if kind == DeductionKind.OWN:
        person = True
    elif agreement_kind:
        person = agreement_kind == TaxpayerKind.PERSON
        taxpayer_id = taxpayer_id or agreement_taxpayer_id
    else:
        person = _is_person_id(taxpayer_id)
    return {
        "tax_pay_name": mask_name(tax_pay_name) if person else tax_pay_name,
        "taxpayer_id": mask_resident_id(taxpayer_id) if person else taxpayer_id,
        "pay_acct": mask_wallet_id(pay_acct),
    }


def shown_refund(refund) -> dict:
    """A refund's taxpayer and payee as pages and the API show them: a person's name, ID and wallet masked (an
    organization's payee wallet is its account, shown whole as on the voucher)."""
    person = _is_person_id(refund.taxpayer_id)
    return {
        "tax_pay_name": mask_name(refund.tax_pay_name) if person else refund.tax_pay_name,
        "taxpayer_id": mask_resident_id(refund.taxpayer_id) if person else refund.taxpayer_id,
        "payee_name": mask_name(refund.payee_name) if person else refund.payee_name,
        "payee_acct": mask_wallet_id(refund.payee_acct) if person else refund.payee_acct,
    }


def _describe_agreements(agreements):
    for agreement in agreements:
        agreement.shown = shown_agreement(agreement)
    return agreements


def _describe_deductions(deductions):
    for deduction in deductions:
        deduction.shown = shown_deduction(deduction)
    return deductions


def package_progress_data(package) -> dict:
    progress = services.package_progress(package_id=package.pk)
    items = progress["items"]
    return {
        "package_id": package.pk, "state": progress["state"],
        "state_label": str(PackageState(progress["state"]).label), "all_num": progress["all_num"],
        "decided": progress["decided"], "succeeded": items.get(DeductionState.SUCCEEDED, 0),
        "failed": items.get(DeductionState.FAILED, 0), "unknown": items.get(DeductionState.UNKNOWN, 0),
        "items": items, "succ_num": progress["succ_num"], "succ_amount_fen": progress["succ_amount_fen"],
        "succ_yuan": format_yuan(progress["succ_amount_fen"]),
        "percent": int(100 * progress["decided"] / progress["all_num"]) if progress["all_num"] else 100,
        "result_acknowledged": progress["result_acknowledged"],
        "finished": progress["state"] == PackageState.DONE,
    }


def entry_report_data(*, user, day: dt.date) -> dict:
    rows = selectors.daily_entry_report(entry_date=day, user=user)
    for row in rows:
        row["budget_level_label"] = BUDGET_LEVELS.get(row["budget_level_code"], row["budget_level_code"])
        row["budget_type_label"] = BUDGET_TYPES.get(row["budget_type"], row["budget_type"])
    return {"day": day, "rows": rows, **selectors.entry_report_totals(rows)}


def entry_report_csv(*, user, day: dt.date) -> HttpResponse:
    """The day's entry report as a CSV attachment (the page's and the API's)."""
    return download(_entry_report_bytes(entry_report_data(user=user, day=day)), content_type="text/csv; charset=utf-8",
                    filename=f"tax-entries-{day:%Y%m%d}.csv")


def entry_report_pdf(*, user, day: dt.date) -> HttpResponse:
    """The day's entry report as a PDF attachment (the page's and the API's), for the user's tax authority."""
    org = user_organization(user)
    authority = ("全部 all" if sees_all_organizations(user) or org is None
                 else f"{org.name} ({org.code})" if org.code else org.name)
    return download(documents.entry_report_pdf(entry_report_data(user=user, day=day), authority=authority),
                    content_type="application/pdf", filename=f"tax-entries-{day:%Y%m%d}.pdf")


def _entry_report_bytes(report: dict) -> bytes:
    day = report["day"].isoformat()
    return csv_bytes(
        header=["入库日期 entry date", "税种 tax type", "预算种类 budget type", "预算级次 budget level", "金额 amount",
                "中央级 central", "地方级 local"],
        rows=([day, row["tax_type_name"], row["budget_type"], row["budget_level_code"],
               *(yuan(row[k]) for k in ("amount_fen", "central_fen", "local_fen"))] for row in report["rows"]),
        trailer=[day, "合计 total", "", "", *(yuan(report[k]) for k in ("amount_fen", "central_fen", "local_fen"))])


def _own_tax_org_code(user) -> str:
    org = user_organization(user)
    return org.code if org is not None and org.code else ""


# ---------------------------------------------------------------------------------------------
# Agreements (三方协议)
# ---------------------------------------------------------------------------------------------


def agreement_filters(form) -> dict:
    data = form.cleaned_data if form.is_valid() else {}
    return {"state": data.get("state") or "", "taxpayer": data.get("taxpayer") or "", "search": data.get("q") or ""}


@require_safe
@login_required
@role_required(*READ_ROLES)
def agreement_list(request):
    form = AgreementFilterForm(request.GET or None)
    agreements = selectors.agreement_list(user=request.user, **agreement_filters(form))
    page = Paginator(agreements, AGREEMENTS_PER_PAGE).get_page(request.GET.get("page"))
    _describe_agreements(page.object_list)
    return render(request, "tax/agreement_list.html", {
        "form": form, "page": page, "filter_query": filter_query(request),
        "can_sign": roles.has_role(request.user, roles.TAX_STAFF, roles.ADMIN) and not roles.is_read_only(request.user),
    })


AGREEMENT_CSV_HEADER = [
    "协议书号 agreement", "征收机关 tax authority", "纳税人类别 taxpayer kind", "纳税人 taxpayer", "纳税人识别号 taxpayer ID",
    "付款钱包 payer wallet", "运营机构行号 operator bank", "签约日期 signed date", "状态 state", "原因 reason",
    "最近验证结果 last verification", "登记时间 registered", "生效时间 activated", "撤销时间 revoked"]


def agreements_csv(agreements):
    """Agreements as a CSV download (the page's and the API's): every one of the query, streamed in its order,
    masked as the pages mask them."""
    kinds, states = dict(TaxpayerKind.choices), dict(AgreementState.choices)

    def rows():
        zone = timezone.get_current_timezone()
        for a in agreements.iterator(chunk_size=2000):
            shown = shown_agreement(a)
            yield [a.protocol_no, a.tax_org_code, kinds.get(a.taxpayer_kind, a.taxpayer_kind), shown["taxpayer_name"],
                   shown["taxpayer_id"], shown["wallet_id"], a.pay_op_bk_code, a.signed_date.isoformat(),
                   states.get(a.state, a.state), a.state_reason, a.last_verification_result,
                   _local_time(a.created_at, zone), _local_time(a.activated_at, zone), _local_time(a.revoked_at, zone)]

    return csv_download(filename=f"tax-agreements-{timezone.localdate():%Y%m%d}.csv", header=AGREEMENT_CSV_HEADER,
                        rows=rows())


@require_safe
@login_required
@role_required(*READ_ROLES)
def agreement_csv(request):
    """The agreements the list's filters select, every page of them (newest first as on the page)."""
    form = AgreementFilterForm(request.GET or None)
    return agreements_csv(selectors.agreement_list(user=request.user, **agreement_filters(form)))


@require_http_methods(["GET", "POST"])
@login_required
@role_required(roles.TAX_STAFF)
@writable_required
def agreement_sign(request):
    form = SignAgreementForm(request.POST or None, initial={
        "tax_org_code": _own_tax_org_code(request.user), "signed_date": timezone.localdate()})
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                agreement = services.sign_agreement(
                    user=request.user, tax_org_code=data["tax_org_code"].strip(), taxpayer_id=data["taxpayer_id"],
                    taxpayer_name=data["taxpayer_name"], wallet_id=data["wallet_id"].strip(),
                    protocol_no=data["protocol_no"], signed_date=data["signed_date"], now=timezone.now())
            except (services.TaxError, AccessDenied, OperatorUnavailable) as exc:
                form.add_error(None, refusal_message(exc))
            else:
                messages.success(request, _("Agreement %(number)s signed; waiting for the tax system's "
                                            "verification.") % {"number": agreement.protocol_no})
                return redirect("tax:agreement-detail", agreement_id=agreement.pk)
    return render(request, "tax/agreement_form.html", {"form": form}, status=status)


@require_safe
@login_required
@role_required(*READ_ROLES)
def agreement_detail(request, agreement_id: int):
    agreement = selectors.agreement_get(user=request.user, agreement_id=agreement_id)
    agreement.shown = shown_agreement(agreement)
    deductions = _describe_deductions(list(selectors.deduction_list(user=request.user)
                                           .filter(agreement=agreement)[:20]))
    return render(request, "tax/agreement_detail.html", {
        "agreement": agreement, "history": selectors.agreement_history(agreement),
        "actions": selectors.agreement_actions(user=request.user, agreement=agreement),
        "reason_actions": REASON_ACTIONS, "reason_form": ReasonForm(), "deductions": deductions,
    })


@require_POST
@login_required
@role_required(roles.TAX_STAFF)
@writable_required
def agreement_action(request, agreement_id: int, action: str):
    """One state change of an agreement, by a POST form; suspend, resume and revoke need a reason."""
    agreement = selectors.agreement_get(user=request.user, agreement_id=agreement_id)  # 404 before anything else
    if action not in AGREEMENT_ACTIONS:
        raise Http404("unknown action")
    kwargs = {"agreement_id": agreement.pk, "user": request.user, "now": timezone.now()}
    if action in REASON_ACTIONS:
        form = ReasonForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Please give a reason."))
            return redirect("tax:agreement-detail", agreement_id=agreement.pk)
        kwargs["reason"] = form.cleaned_data["reason"]
    try:
        _SERVICES[action](**kwargs)
    except (services.TaxError, AccessDenied, TransitionNotAllowed, ConcurrentTransition) as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, _ACTION_DONE[action])
    return redirect("tax:agreement-detail", agreement_id=agreement.pk)


# ---------------------------------------------------------------------------------------------
# Deductions and packages
# ---------------------------------------------------------------------------------------------


def deduction_filters(form) -> dict:
    data = form.cleaned_data if form.is_valid() else {}
    return {"date_from": data.get("date_from"), "date_to": data.get("date_to"),
            "result_code": data.get("result_code") or "", "kind": data.get("kind") or "",
            "taxpayer": data.get("taxpayer") or ""}


@require_safe
@login_required
@role_required(*READ_ROLES)
def deduction_list(request):
    form = DeductionFilterForm(request.GET or None)
    deductions = selectors.deduction_list(user=request.user, **deduction_filters(form))
    totals = selectors.deduction_totals(deductions)
    paginator = Paginator(deductions, DEDUCTIONS_PER_PAGE)
    paginator.count = totals["count"]  # counted with the totals: not a second pass over the rows
    page = paginator.get_page(request.GET.get("page"))
    _describe_deductions(page.object_list)
    return render(request, "tax/deduction_list.html", {
        "form": form, "page": page, "filter_query": filter_query(request), "totals": totals,
    })


DEDUCTION_CSV_HEADER = [
    "委托日期 entrust date", "交易流水号 serial", "征收机关 tax authority", "类别 kind", "包 package", "纳税人 taxpayer",
    "纳税人识别号 taxpayer ID", "协议书号 agreement", "付款钱包 payer wallet", "税票号 tax voucher", "金额(元) amount",
    "状态 state", "处理结果 result", "附言 note", "转账 transfer", "收到时间 received", "完成时间 decided"]


_DEDUCTION_CSV_COLUMNS = (
    "entrust_date", "tra_no", "tax_org_code", "kind", "package__pack_no", "tax_pay_name", "taxpayer_id",
    "agreement__taxpayer_kind", "agreement__taxpayer_id", "protocol_no", "pay_acct", "tax_vou_no", "amount_fen",
    "state", "result_code", "add_word", "transfer_id", "created_at", "decided_at")


def deductions_csv(deductions):
    """Deductions as a CSV download (the page's and the API's): every one of the query, streamed in its order,
    personal data masked as the pages mask it."""
    kinds, states = dict(DeductionKind.choices), dict(DeductionState.choices)

    def rows():
        zone = timezone.get_current_timezone()
        # Columns, not model instances: an export of a year's deductions is a million rows.
        for (entrust_date, tra_no, tax_org_code, kind, pack_no, tax_pay_name, taxpayer_id, agreement_kind,
             agreement_taxpayer_id, protocol_no, pay_acct, tax_vou_no, amount_fen, state, result_code, add_word,
             transfer_id, created_at, decided_at) in deductions.values_list(*_DEDUCTION_CSV_COLUMNS).iterator(2000):
            shown = _shown_taxpayer(kind=kind, taxpayer_id=taxpayer_id, tax_pay_name=tax_pay_name, pay_acct=pay_acct,
                                    agreement_kind=agreement_kind, agreement_taxpayer_id=agreement_taxpayer_id)
            yield [entrust_date.isoformat(), tra_no, tax_org_code, kinds.get(kind, kind), pack_no or "",
                   shown["tax_pay_name"], shown["taxpayer_id"], protocol_no, shown["pay_acct"], tax_vou_no,
                   yuan(amount_fen), states.get(state, state), result_code, add_word, transfer_id or "",
                   _local_time(created_at, zone), _local_time(decided_at, zone)]

    return csv_download(filename=f"tax-deductions-{timezone.localdate():%Y%m%d}.csv", header=DEDUCTION_CSV_HEADER,
                        rows=rows())


@require_safe
@login_required
@role_required(*READ_ROLES)
def deduction_csv(request):
    """The deductions the list's filters select, every page of them (newest first as on the page)."""
    form = DeductionFilterForm(request.GET or None)
    return deductions_csv(selectors.deduction_list(user=request.user, **deduction_filters(form)))


def _local_time(moment, zone=None) -> str:
    """A moment as the service's local time for an export; `zone` read once by a long export."""
    return f"{moment.astimezone(zone or timezone.get_current_timezone()):%Y-%m-%d %H:%M:%S}" if moment else ""


@require_safe
@login_required
@role_required(*READ_ROLES)
def deduction_detail(request, deduction_id: int):
    """One deduction from its source to the treasury: what the tax system asked, the agreement and package, the
    transfer that moved the money (its page has the ledger entries, the trace and the receipt), the treasury
    entries by tax type and budget level, reversals, and its own trace events."""
    deduction = selectors.deduction_get(user=request.user, deduction_id=deduction_id)
    deduction.shown = shown_deduction(deduction)
    entries = selectors.deduction_entries(deduction)
    for entry in entries:
        entry.budget_level_label = BUDGET_LEVELS.get(entry.budget_level_code, entry.budget_level_code)
    receipt = getattr(deduction.transfer, "receipt", None) if deduction.transfer_id else None
    return render(request, "tax/deduction_detail.html", {
        "deduction": deduction, "entries": entries, "history": selectors.deduction_history(deduction),
        "reversals": selectors.deduction_reversals(deduction),
        "budget_type_label": BUDGET_TYPES.get(deduction.budget_type, deduction.budget_type),
        "budget_level_label": BUDGET_LEVELS.get(deduction.budget_level_code, deduction.budget_level_code),
        "receipt_number": receipt.number if receipt and receipt.number in downloadable_receipt_numbers(
            user=request.user, rows=[deduction]) else "",
    })


@require_safe
@login_required
@role_required(*READ_ROLES)
def reversal_list(request):
    """Reversal requests (1021) and stop-payment requests (1123) of the tax system, with their answers: two
    lists, each paged on its own, filtered by the date of the request."""
    form = EntrustDatesForm(request.GET or None)
    dates = form.cleaned_data if form.is_valid() else {}
    dates = {"date_from": dates.get("date_from"), "date_to": dates.get("date_to")}
    reversals = Paginator(selectors.reversal_list(user=request.user, **dates),
                          REVERSALS_PER_PAGE).get_page(request.GET.get("page"))
    stops = Paginator(selectors.stop_payment_list(user=request.user, **dates),
                      STOP_PAYMENTS_PER_PAGE).get_page(request.GET.get("stops_page"))
    query = request.GET.copy()
    for param in ("page", "stops_page"):  # paging one list starts the other over
        query.pop(param, None)
    return render(request, "tax/reversal_list.html", {
        "form": form, "page": reversals, "stops": stops, "filter_query": query.urlencode()})


@require_safe
@login_required
@role_required(*READ_ROLES)
def package_list(request):
    form = PackageFilterForm(request.GET or None)
    state = form.cleaned_data["state"] if form.is_valid() else ""
    page = Paginator(selectors.package_list(user=request.user, state=state),
                     PACKAGES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "tax/package_list.html", {"page": page, "form": form, "filter_query": filter_query(request)})


@require_safe
@login_required
@role_required(*READ_ROLES)
def package_detail(request, package_id: int):
    package = selectors.package_get(user=request.user, package_id=package_id)
    page = Paginator(selectors.deduction_list(user=request.user, package_id=package.pk).order_by("pk"),
                     DEDUCTIONS_PER_PAGE).get_page(request.GET.get("page"))
    _describe_deductions(page.object_list)
    return render(request, "tax/package_detail.html", {
        "package": package, "page": page, "progress": package_progress_data(package),
        "stop_requests": list(package.stop_requests.order_by("received_at", "pk"))})


@require_safe
@login_required
@role_required(*READ_ROLES)
def package_progress(request, package_id: int):
    """The live progress as JSON, polled by the package page while its items are deducted."""
    package = selectors.package_get(user=request.user, package_id=package_id)
    return JsonResponse(package_progress_data(package))


# ---------------------------------------------------------------------------------------------
# The daily treasury entry report (入库日报)
# ---------------------------------------------------------------------------------------------


def _report_day(request) -> dt.date:
    form = EntryReportForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        raise Http404("bad date")
    return (form.cleaned_data.get("day") if form.is_bound else None) or timezone.localdate()


@require_safe
@login_required
@role_required(*READ_ROLES)
def entry_report(request):
    day = _report_day(request)
    return render(request, "tax/entry_report.html", {
        "report": entry_report_data(user=request.user, day=day), "day": day,
        "csv_url": f"{reverse('tax:entry-report-csv')}?{urlencode({'day': day.isoformat()})}",
        "pdf_url": f"{reverse('tax:entry-report-pdf')}?{urlencode({'day': day.isoformat()})}",
        "previous_day": (day - dt.timedelta(days=1)).isoformat(), "next_day": (day + dt.timedelta(days=1)).isoformat(),
    })


@require_safe
@login_required
@role_required(*READ_ROLES)
def entry_report_download(request):
    return entry_report_csv(user=request.user, day=_report_day(request))


@require_safe
@login_required
@role_required(*READ_ROLES)
def entry_report_pdf_download(request):
    return entry_report_pdf(user=request.user, day=_report_day(request))


# ---------------------------------------------------------------------------------------------
# A tax paid by an individual from a personal wallet, at the tax hall's counter
# ---------------------------------------------------------------------------------------------


def pay_own_tax(*, user, data: dict, now) -> object:
    """The page's and the API's way into services.pay_own_tax: only staff of the tax authority the
    voucher belongs to take the payment (the service itself does not know who asks).

    Raises:
        AccessDenied, TaxError, OperatorUnavailable.
    """
    services.ensure_tax_staff(user, tax_org_code=data["tax_org_code"])
    tax_types = services.own_tax_types(tax_type_name=data.get("tax_type_name", ""), amount_fen=data["amount_fen"],
                                       on=services.local_date(now))
    return services.pay_own_tax(
        wallet_id=data["wallet_id"].strip(), taxpayer_id=data["taxpayer_id"].strip(),
        taxpayer_name=data["taxpayer_name"].strip(), tax_org_code=data["tax_org_code"],
        tax_vou_no=data["tax_vou_no"].strip(), amount_fen=data["amount_fen"], tax_types=tax_types, now=now)


def _say_paid(request, deduction) -> None:
    """Whether a voucher paid from a personal wallet was debited, as a message on the next page."""
    values = {"voucher": deduction.tax_vou_no, "amount": format_yuan(deduction.amount_fen),
              "result": f"{deduction.result_code} {deduction.add_word}"}  # the result code and its note are data
    if deduction.state == DeductionState.SUCCEEDED:
        messages.success(request, _("Tax paid · voucher %(voucher)s: %(amount)s · %(result)s") % values)
    else:
        messages.error(request, _("Tax not paid · voucher %(voucher)s: %(amount)s · %(result)s") % values)


@require_http_methods(["GET", "POST"])
@login_required
@role_required(roles.TAX_STAFF)
@writable_required
def own_tax(request):
    form = OwnTaxForm(request.POST or None, initial={"tax_org_code": _own_tax_org_code(request.user)})
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = {**form.cleaned_data, "amount_fen": form.cleaned_data["amount"]}
            try:
                deduction = pay_own_tax(user=request.user, data=data, now=timezone.now())
            except (services.TaxError, AccessDenied, OperatorUnavailable) as exc:
                add_refusal(form, exc)
            else:
                _say_paid(request, deduction)
                return redirect(f"{reverse('tax:deduction-list')}?{urlencode({'kind': DeductionKind.OWN})}")
    return render(request, "tax/own_tax_form.html", {"form": form}, status=status)


# ---------------------------------------------------------------------------------------------
# An individual's own taxes (self-service): pay a voucher from one's own wallet, see what one paid
# ---------------------------------------------------------------------------------------------

MY_TAXES_PER_PAGE = 50
MY_REFUNDS_SHOWN = 20  # the latest: a person is refunded a few times a year


def _my_tax_form(request, data=None) -> MyTaxForm:
    wallets = [(w.wallet_id, f"{mask_wallet_id(w.wallet_id)} · {w.get_wallet_type_display()}")
               for w in services.my_wallets(request.user)]
    authorities = [(code, f"{name} ({code})") for code, name in selectors.tax_authorities()]
    return MyTaxForm(data, wallets=wallets, authorities=authorities)


@require_http_methods(["GET", "POST"])
@login_required
@role_required(roles.INDIVIDUAL)
@writable_required  # an auditor who is also a person here pays nothing through the service (as for premiums)
def my_tax(request):
    """我的纳税: the signed-in individual pays a tax voucher from one of their own personal wallets registered
    here, and sees the taxes paid from their wallets or under their agreements and the refunds paid to them,
    with receipts."""
    form = _my_tax_form(request, request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                deduction = services.pay_my_tax(
                    user=request.user, wallet_id=data["wallet_id"], tax_org_code=data["tax_org_code"],
                    tax_vou_no=data["tax_vou_no"].strip(), amount_fen=data["amount"],
                    tax_type_name=data["tax_type_name"].strip(), now=timezone.now())
            except (services.TaxError, OperatorUnavailable) as exc:
                add_refusal(form, exc)
            else:
                _say_paid(request, deduction)
                return redirect("tax:mine")
    page = Paginator(selectors.my_deductions(request.user), MY_TAXES_PER_PAGE).get_page(request.GET.get("page"))
    refunds = list(selectors.my_refunds(request.user)[:MY_REFUNDS_SHOWN])
    authorities = dict(selectors.tax_authorities())
    for row in [*page.object_list, *refunds]:
        row.authority_name = authorities.get(row.tax_org_code, "")
    return render(request, "tax/my_tax.html", {
        "form": form, "page": page, "has_wallet": bool(form.fields["wallet_id"].choices), "refunds": refunds,
        "receipts": downloadable_receipt_numbers(user=request.user, rows=[*page.object_list, *refunds]),
    }, status=status)


# ---------------------------------------------------------------------------------------------
# Refunds from the treasury (退库, 1104): list, detail with items and results, review / approve / reject
# ---------------------------------------------------------------------------------------------

REFUND_ORDERS_PER_PAGE = 50
REFUNDS_PER_PAGE = 100
REFUND_ACTIONS = ("review", "approve", "reject")
_REFUND_DONE = {
    "review": gettext_lazy("Reviewed; another staff member approves it."),
    "approve": gettext_lazy("Approved; the refunds are being paid."),
    "reject": gettext_lazy("Rejected."),
}


def refund_order_get(*, user, order_id: int):
    order = selectors.visible_refund_orders(user).filter(pk=order_id).first()
    if order is None:
        raise Http404("no such refund order")
    return order


def refund_actions(*, user, order) -> list[str]:
    """What the user may do with the order now: tax staff of its authority (not auditors); the
    reviewer is not offered the approval."""
    if roles.is_read_only(user) or not roles.has_role(user, roles.TAX_STAFF, roles.ADMIN):
        return []
    try:
        services.ensure_tax_staff(user, tax_org_code=order.tax_org_code)
    except AccessDenied:
        return []
    if order.state == RefundOrderState.RECEIVED:
        return ["review", "reject"]
    if order.state == RefundOrderState.REVIEWED:
        return (["approve"] if order.reviewed_by_id != user.pk else []) + ["reject"]
    return []


@require_safe
@login_required
@role_required(*READ_ROLES)
def refund_list(request):
    form = RefundFilterForm(request.GET or None)
    orders = selectors.visible_refund_orders(request.user)
    if form.is_valid() and form.cleaned_data["state"]:
        orders = orders.filter(state=form.cleaned_data["state"])
    page = Paginator(orders, REFUND_ORDERS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "tax/refund_list.html", {"page": page, "form": form, "filter_query": filter_query(request)})


@require_safe
@login_required
@role_required(*READ_ROLES)
def refund_detail(request, order_id: int):
    order = refund_order_get(user=request.user, order_id=order_id)
    page = Paginator(order.refunds.select_related("transfer", "transfer__receipt").order_by("pk"),
                     REFUNDS_PER_PAGE).get_page(request.GET.get("page"))
    downloadable = downloadable_receipt_numbers(user=request.user, rows=page.object_list)
    for r in page.object_list:
        r.shown = shown_refund(r)
        receipt = getattr(r.transfer, "receipt", None) if r.state == RefundState.PAID else None
        r.receipt_number = receipt.number if receipt and receipt.number in downloadable else ""
    return render(request, "tax/refund_detail.html", {
        "order": order, "page": page, "actions": refund_actions(user=request.user, order=order),
        "reason_form": ReasonForm()})


@require_POST
@login_required
@role_required(roles.TAX_STAFF)
@writable_required
def refund_action(request, order_id: int, action: str):
    """Review, approve (a second person) or reject (with a reason) a refund order, by a POST form."""
    order = refund_order_get(user=request.user, order_id=order_id)  # 404 before anything else
    if action not in REFUND_ACTIONS:
        raise Http404("unknown action")
    kwargs = {"order_id": order.pk, "user": request.user, "now": timezone.now()}
    if action == "reject":
        form = ReasonForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Please give a reason."))
            return redirect("tax:refund-detail", order_id=order.pk)
        kwargs["reason"] = form.cleaned_data["reason"]
    service = {"review": services.review_refund_order, "approve": services.approve_refund_order,
               "reject": services.reject_refund_order}[action]
    try:
        service(**kwargs)
    except (TransitionNotAllowed, ConcurrentTransition):
        messages.error(request, _("The refund order's state does not allow this; the page shows what it is now."))
    except (services.TaxError, AccessDenied) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _REFUND_DONE[action])
    return redirect("tax:refund-detail", order_id=order.pk)
