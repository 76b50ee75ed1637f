"""Trace pages: search, a transfer's / a wallet's / a document's path, and trace integrity.

Views read the request, ask `selectors` (scoped to the user) and render; nothing else.
"""
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_safe

from treasury import keys
from treasury.access.decorators import role_required
from treasury.access.roles import AUDITOR

from . import selectors
from .models import TraceCheckpoint
from .verification import verify_trace



def _url_for(kind: str, key: str) -> str:
    if kind == "transfer":
        return reverse("trace:transfer", kwargs={"transfer_id": int(key)})
    if kind == "wallet":  # the page's address names the wallet's row, not its id (personal data)
        return reverse("trace:wallet", kwargs={"wallet_pk": selectors.wallet_pk_of(key)})
    return reverse("trace:document", kwargs={"ref": key})


@require_safe
@login_required
def search(request):
    query = request.GET.get("q", "").strip()
    if query:
        found = selectors.resolve_query(user=request.user, query=query)
        if found is not None:
            return redirect(_url_for(*found))
    return render(request, "trace/search.html", {"query": query, "not_found": bool(query)})


@require_safe
@login_required
def transfer_trace(request, transfer_id: int):
    path = selectors.transfer_path(user=request.user, transfer_id=transfer_id)
    return render(request, "trace/path.html", {"path": path})


@require_safe
@login_required
def wallet_trace(request, wallet_pk: int):
    path = selectors.wallet_path(user=request.user, wallet_pk=wallet_pk)
    return render(request, "trace/path.html", {"path": path})


@require_safe
@login_required
def document_trace(request, ref: str):
    path = selectors.document_path(user=request.user, ref=ref)
    return render(request, "trace/path.html", {"path": path})


@require_safe
@login_required
@role_required(AUDITOR)
def verify(request):
    """Checkpoints and the service's public key; `?run=1` verifies the whole trace now."""
    report = verify_trace() if request.GET.get("run") else None
    context = {
        "report": report,
        "checkpoints": TraceCheckpoint.objects.order_by("-number")[:20],
        "key_id": keys.key_id(),
        "public_key_pem": keys.public_key_pem(),
    }
    return render(request, "trace/verify.html", context)
