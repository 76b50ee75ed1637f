"""Receipt pages: public verification (upload, or the QR link) and scoped download."""
import math

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_http_methods

from . import selectors, services
from .api import VerifyThrottle
from .forms import VerifyReceiptForm


def _upload_limit() -> int:
    return getattr(settings, "RECEIPT_MAX_UPLOAD_BYTES", 5 * 1024 * 1024)


@require_http_methods(["GET", "POST"])
def verify_upload(request):
    """Anyone may check a receipt PDF they hold (CSRF protected form). As many checks a minute from one address as
    the API's check allows, counted with it (`VerifyThrottle`): the page reads PDFs as the API does."""
    result = None
    form = VerifyReceiptForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        throttle = VerifyThrottle()
        if not throttle.allow_request(request, None):
            form.errors.clear()
            form.add_error(None, "验证过于频繁，请稍后再试 (too many checks from this address: try again in a minute)")
            response = render(request, "receipts/verify.html", {"form": form, "result": None}, status=429)
            response["Retry-After"] = str(math.ceil(throttle.wait() or 1))
            return response
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > _upload_limit():
            result = services.VerificationResult(ok=False, reasons=[services.finding("too_large")])
        else:
            result = services.verify_receipt_pdf(pdf_bytes=upload.read())
    status = 200 if request.method == "GET" or result is None or result.ok else 422
    return render(request, "receipts/verify.html", {"form": form, "result": result}, status=status)


@require_GET
def verify_code(request, number: str):
    """What a receipt's QR code opens: the receipt's key facts (masked), if the code matches."""
    receipt = selectors.receipt_by_code(number=number, code=request.GET.get("c", ""))
    if receipt is None:
        # Same answer for an unknown number and a wrong code: numbers cannot be probed.
        return render(request, "receipts/verify_code.html", {"number": number, "result": None}, status=404)
    result = services.verify_issued_receipt(receipt=receipt)
    return render(request, "receipts/verify_code.html", {"number": number, "receipt": receipt, "result": result})


@login_required
@require_GET
def download(request, number: str):
    """The issued PDF, for users who may see the transfer (or batch): 404 for everyone else."""
    receipt = get_object_or_404(selectors.visible_receipts(request.user), number=number)
    path = services.receipt_file(receipt.file_path)
    if not path.exists():
        raise Http404("receipt file missing")
    return FileResponse(path.open("rb"), content_type="application/pdf", as_attachment=True, filename=f"{number}.pdf")
