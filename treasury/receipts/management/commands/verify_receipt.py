"""python manage.py verify_receipt FILE.pdf: exit 0 for a genuine receipt, 1 otherwise."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from treasury.receipts.services import verify_receipt_pdf


class Command(BaseCommand):
    help = "Verify a receipt PDF (电子回单): signature, issued file, and the transfer in the ledger."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="the receipt PDF")

    def handle(self, *args, file: Path, **options):
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}")
        result = verify_receipt_pdf(pdf_bytes=data)
        label = result.receipt_number or file.name
        if result.ok:
            self.stdout.write(self.style.SUCCESS(f"GENUINE {label}: 回单真实有效 (the receipt is genuine)"))
        else:
            self.stdout.write(self.style.ERROR(f"NOT GENUINE {label}: 回单未通过验证 (the receipt failed verification)"))
        for finding in result.reasons:
            self.stdout.write(f"  - [{finding.code}] {finding.message}")
        for finding in result.notes:
            self.stdout.write(f"  * [{finding.code}] {finding.message}")
        if not result.ok:
            raise SystemExit(1)
