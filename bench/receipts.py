"""Receipts per second per core: signed receipts with QR code beside a bare reportlab page.

    python bench/receipts.py [--n 500] [--rounds 3]

Signed (the issue path without database writes): canonical JSON of the receipt data, Ed25519
signature, verification code, QR code (segno matrix drawn as merged runs), the one-page PDF with the
data and signature embedded as attachments, and the SHA-256 of the PDF bytes.
Bare (baseline, same run): a one-page reportlab PDF with the same text lines in the same fonts,
drawn with plain `drawString`, without QR code, attachments or signature.

Both run in this one process on one core, interleaved round by round; rates are per CPU second of
this process (time.process_time), so other load on the machine does not skew the ratio; the best
round of each counts. Target: signed >= half the bare rate.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import production  # noqa: F401  (DJANGO_DEBUG=0, throwaway secrets; bench/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(key_dir: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # A throwaway signing key: the benchmark never touches the service's real key.
    os.environ["SERVICE_SIGNING_KEY_FILE"] = str(Path(key_dir) / "bench-ed25519.pem")
    os.environ["SERVICE_SIGNING_KEY_CREATE"] = "1"
    import django

    django.setup()


def sample_payloads(n: int) -> list[dict]:
    from treasury.money import fen_to_capitals, fen_to_yuan_str

    settled = datetime(2025, 3, 14, 2, 25, tzinfo=timezone.utc)
    payloads = []
    for i in range(n):
        transfer_id = 1_000_000 + i
        amount = 523_456 + 137 * i
        payloads.append({
            "format": "ecny-receipt", "version": 1, "kind": "transfer",
            "receipt_number": f"R20250314{transfer_id:010d}",
            "issued_at": (settled + timedelta(minutes=1)).isoformat(timespec="seconds"),
            "issuer": "数字人民币财政支付服务平台", "currency": "CNY",
            "amount": {"fen": amount, "yuan": fen_to_yuan_str(amount), "capitals": fen_to_capitals(amount)},
            "payer": {"holder": "organization", "name": "某某市第一中学", "wallet_id": "0021000000000001",
                      "operator": "中国某某银行"},
            "payee": {"holder": "person", "name": "张*三", "wallet_id": f"0021********{i % 10000:04d}",
                      "operator": "中国某某银行"},
            "transfer": {"id": transfer_id, "idempotency_key": f"payroll:PAY-2025-03:{i}",
                         "operator_txn_id": f"OP20250314{i:06d}", "state": "settled",
                         "settled_at": settled.isoformat(), "batch_ref": "PAY-2025-03",
                         "source_ref": f"PAY-2025-03/line-{i}", "purpose_code": "SALA", "memo": "三月工资"},
        })
    return payloads


def bare_pdf(lines: list[tuple[str, str]], title: str, number: str) -> bytes:
    """The baseline: the same text, plain reportlab, nothing else."""
    from reportlab.pdfgen import canvas

    from treasury.receipts import pdf

    pdf.register_fonts()
    buffer = io.BytesIO()
    c = canvas.Canvas(buffer, pagesize=pdf.PAGE_SIZE, pageCompression=1)
    width, height = pdf.PAGE_SIZE
    c.setFont(pdf.CJK_FONT, 16)
    c.drawString(36, height - 50, title)
    c.setFont(pdf.LATIN_FONT, 10)
    c.drawString(76, height - 84, number)
    y = height - 102
    for label, value in lines:
        c.setFont(pdf.CJK_FONT, 9)
        c.drawString(36, y, label)
        c.setFont(pdf.LATIN_FONT if all(ord(ch) < 256 for ch in value) else pdf.CJK_FONT, 9)
        c.drawString(128, y, value)
        y -= 16.5
    c.showPage()
    c.save()
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="receipts per round (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each, interleaved (default 3)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as key_dir:
        setup_django(key_dir)
        from treasury.receipts import services

        payloads = sample_payloads(args.n)
        # The same visible text for the baseline (rows, footer, verification code line).
        pages = [services.transfer_page(p, code="ABCDEFGHJK", with_qr=False) for p in payloads]
        bare_inputs = [
            (page.rows + [(line, "") for line in page.footer_lines] + [("验证码", "ABCDEFGHJK")], page.title, page.number)
            for page in pages
        ]
        services.sign_and_render(payloads[0], services.transfer_page)  # warm up: key, fonts, QR layout
        bare_pdf(*bare_inputs[0])

        bare_best = signed_best = 0.0
        signed_size = bare_size = 0
        for round_number in range(1, args.rounds + 1):
            start = time.process_time()
            for inputs in bare_inputs:
                bare_size = len(bare_pdf(*inputs))
            bare_rate = args.n / (time.process_time() - start)

            start = time.process_time()
            for payload in payloads:
                signed_size = len(services.sign_and_render(payload, services.transfer_page).pdf_bytes)
            signed_rate = args.n / (time.process_time() - start)
            print(f"round {round_number}: bare {bare_rate:7.1f}/s   signed+QR {signed_rate:7.1f}/s")
            bare_best, signed_best = max(bare_best, bare_rate), max(signed_best, signed_rate)

    ratio = signed_best / bare_best
    print(f"bare one-page reportlab PDF, same text:        {bare_best:7.1f} receipts/s per core ({bare_size} bytes)")
    print(f"signed receipt with QR + embedded data (no DB): {signed_best:7.1f} receipts/s per core ({signed_size} bytes)")
    print(f"ratio signed/bare: {ratio:.2f} (target >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
