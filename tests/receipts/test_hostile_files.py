"""The public check of a receipt file takes anything anyone uploads: embedded data of any shape (unsigned, so
whatever a forger writes) and odd QR links are answered with reasons, never with a server error."""
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pypdf import PdfWriter
from rest_framework.test import APIClient

from treasury.models import Transfer
from treasury.receipts import services
from treasury.receipts.models import Receipt
from treasury.receipts.services import issue_transfer_receipts, verify_receipt_pdf

SIGNATURE = {"alg": "Ed25519", "key_id": "0000000000000000", "signature": "AAAA"}


def pdf_with(payload, signature=SIGNATURE) -> bytes:
    """A PDF carrying the two attachments a receipt has, with whatever a forger put in them."""
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    for name, value in (("receipt.json", payload), ("receipt.sig.json", signature)):
        writer.add_attachment(name, value if isinstance(value, bytes) else json.dumps(value).encode())
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def codes(result):
    return {f.code for f in result.reasons}


TRANSFER = {"receipt_number": "R202503140000000001", "kind": "transfer"}
BATCH = {"receipt_number": "B202503140000000001", "kind": "batch", "batch_ref": "PAY-2025-03", "total": {"fen": 1}}

HOSTILE = {
    # sections that are not objects (the facts the page shows are read from them)
    "transfer is a list": ({**TRANSFER, "transfer": [1], "amount": {"fen": 1}}, "malformed_embedded_data"),
    "amount is a list": ({**TRANSFER, "transfer": {"id": 1}, "amount": [1]}, "malformed_embedded_data"),
    "total is a list": ({**BATCH, "total": [1], "transfer_ids": [1]}, "malformed_embedded_data"),
    "counts is a list": ({**BATCH, "total": {"fen": 0}, "transfer_ids": [], "counts": [1]}, "batch_mismatch"),
    "ids are a text": ({**BATCH, "transfer_ids": "123"}, "malformed_embedded_data"),
    "ids are an object": ({**BATCH, "transfer_ids": {"1": 1}}, "malformed_embedded_data"),
    "whole data is a list": (b"[1, 2]", "malformed_embedded_data"),
    "signature block is a list": ((TRANSFER, b'["AAAA"]'), "malformed_embedded_data"),
    # numbers Python's json reads and no JSON answer can carry
    "id is Infinity": (b'{"receipt_number": "R1", "transfer": {"id": Infinity}, "amount": {"fen": 1}}',
                       "malformed_embedded_data"),
    "amount is NaN": (b'{"receipt_number": "R1", "transfer": {"id": 1}, "amount": {"fen": NaN}}',
                      "malformed_embedded_data"),
    "id is 1e999": (b'{"receipt_number": "R1", "transfer": {"id": 1e999}, "amount": {"fen": 1}}',
                    "malformed_embedded_data"),
    "amount holds a fraction": (b'{"receipt_number": "R1", "transfer": {"id": 1}, "amount": {"fen": 1.5}}',
                                "malformed_embedded_data"),
    "ids hold -Infinity": (b'{"receipt_number": "B1", "kind": "batch", "batch_ref": "x", "total": {"fen": 1}, '
                           b'"transfer_ids": [-Infinity]}', "malformed_embedded_data"),
    "nested too deep": (b'{"receipt_number": "R1", "transfer": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
                        "malformed_embedded_data"),
    # what no text column holds (PostgreSQL refuses a NUL even as a query's parameter)
    "number holds a NUL": ({**TRANSFER, "receipt_number": "R1\u0000", "transfer": {"id": 1}, "amount": {"fen": 1}},
                           "unknown_receipt"),
    "batch holds a NUL": ({**BATCH, "batch_ref": "PAY\u0000", "transfer_ids": [1]}, "transfer_missing"),
    # more ids than SQLite takes in one statement, and ids out of any integer column's range
    "300,000 ids": ({**BATCH, "transfer_ids": list(range(1, 300_001))}, "transfer_missing"),
    "ids out of range": ({**BATCH, "transfer_ids": [10 ** 30, -(10 ** 30)]}, "transfer_missing"),
    "id out of range": ({**TRANSFER, "transfer": {"id": 10 ** 30}, "amount": {"fen": 10 ** 30}}, "transfer_missing"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_embedded_data_is_a_reason_on_the_page_and_in_the_api(world, case):
    embedded, code = HOSTILE[case]
    data = pdf_with(*embedded) if isinstance(embedded, tuple) else pdf_with(embedded)
    result = verify_receipt_pdf(pdf_bytes=data)
    assert not result.ok and code in codes(result), codes(result)
    page = Client().post("/receipts/verify/", {"file": SimpleUploadedFile("r.pdf", data)})
    assert page.status_code == 422 and f"<code>{code}</code>".encode() in page.content
    api = APIClient().post("/api/v1/receipts/verify/", {"file": SimpleUploadedFile("r.pdf", data)}, format="multipart")
    assert api.status_code == 200 and api.json()["ok"] is False and code in {r["code"] for r in api.json()["reasons"]}


@pytest.mark.django_db
def test_a_batch_listing_more_ids_than_it_holds_reads_no_more_than_the_batch(world, now, django_assert_max_num_queries):
    transfers = [world.transfer(amount_fen=100) for _ in range(3)]
    data = pdf_with({**BATCH, "transfer_ids": [t.pk for t in transfers] + list(range(10_000, 60_000)),
                     "counts": {"settled": 50_003}})
    with django_assert_max_num_queries(3):  # the receipt, the batch's size; no query per chunk of forged ids
        result = verify_receipt_pdf(pdf_bytes=data)
    assert {"transfer_missing", "batch_mismatch"} <= codes(result)


@pytest.mark.django_db
def test_ids_out_of_range_in_a_real_batch_are_missing(world):
    transfers = [world.transfer(amount_fen=100) for _ in range(3)]
    data = pdf_with({**BATCH, "transfer_ids": [transfers[0].pk, 10 ** 30], "total": {"fen": 100},
                     "counts": {"settled": 2}})
    assert codes(verify_receipt_pdf(pdf_bytes=data)) >= {"transfer_missing", "signature_invalid"}


@pytest.mark.django_db
def test_a_genuine_batch_of_more_ids_than_one_query_takes_still_verifies(world, now, monkeypatch):
    monkeypatch.setattr(services, "BATCH_CHECK_CHUNK", 2)  # five transfers: three queries
    transfers = [world.transfer(amount_fen=100 + n) for n in range(5)]
    issue_transfer_receipts(transfer_ids=[t.pk for t in transfers], now=now)
    receipt = services.issue_batch_receipt(batch_ref="PAY-2025-03", now=now)
    result = verify_receipt_pdf(pdf_bytes=services.receipt_file(receipt.file_path).read_bytes())
    assert result.ok, codes(result)
    Transfer.objects.filter(pk=transfers[4].pk).update(amount_fen=1)  # the last chunk's transfer
    result = verify_receipt_pdf(pdf_bytes=services.receipt_file(receipt.file_path).read_bytes())
    assert codes(result) == {"batch_mismatch"}


@pytest.mark.django_db
@pytest.mark.parametrize("code", ["é", "ÅBCDEFGHJK", "\u0000", "Ａ" * 10, "A" * 10_000])
def test_a_qr_link_with_an_odd_code_is_not_found(world, now, code):
    transfer = world.transfer()
    issue_transfer_receipts(transfer_ids=[transfer.pk], now=now)
    receipt = Receipt.objects.get(transfer=transfer)
    response = Client().get(f"/receipts/verify/{receipt.number}/", {"c": code})
    assert response.status_code == 404 and "张*三".encode() not in response.content
    assert Client().get(f"/receipts/verify/{receipt.number}/", {"c": receipt.verification_code}).status_code == 200


@pytest.mark.django_db
def test_the_receipt_list_filtered_by_a_batch_with_a_nul_is_empty(world):
    from .test_views_api import make_user

    api = APIClient()
    api.force_authenticate(make_user("clerk1", world.employer))
    response = api.get("/api/v1/receipts/", {"batch_ref": "PAY-2025-03\x00"})
    assert response.status_code == 200 and response.json()["results"] == []
