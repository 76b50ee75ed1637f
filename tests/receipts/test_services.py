import base64
import io
import json
from datetime import timedelta

import pypdf
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command

from treasury import keys
from treasury.models import LedgerEntry, Transfer, TransferState
from treasury.receipts import pdf, services
from treasury.receipts.models import Receipt
from treasury.receipts.services import issue_batch_receipt, issue_transfer_receipts, verify_receipt_pdf
from treasury.trace.models import TraceEvent


def issued_bytes(receipt: Receipt) -> bytes:
    return services.receipt_file(receipt.file_path).read_bytes()


def codes(result):
    return {f.code for f in result.reasons}


@pytest.fixture
def settled(world, now):
    transfer = world.transfer(amount_fen=1234567)
    assert issue_transfer_receipts(transfer_ids=[transfer.pk], now=now) == 1
    return transfer, Receipt.objects.get(transfer=transfer)


def test_receipt_text_has_number_amount_capitals_and_masked_names(settled):
    transfer, receipt = settled
    reader = pypdf.PdfReader(io.BytesIO(issued_bytes(receipt)))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    assert receipt.number == f"R20250314{transfer.pk:010d}"
    for expected in (receipt.number, "¥12,345.67", "壹万贰仟叁佰肆拾伍元陆角柒分", "张*三", "0021********0002",
                     "某某市第一中学", "0021000000000001", transfer.source_ref, transfer.idempotency_key,
                     transfer.operator_txn_id, "2025-03-14 10:25:00", receipt.verification_code):
        assert expected in text, expected
    # The person's full name and wallet id appear nowhere in the file, page or embedded data.
    raw = issued_bytes(receipt)
    assert "张晓三" not in text and "0021000000000002" not in text
    assert "0021000000000002".encode() not in raw
    embedded = json.loads(reader.attachments["receipt.json"][0])
    assert embedded == receipt.payload
    assert embedded["amount"] == {"fen": 1234567, "yuan": "12345.67", "capitals": "壹万贰仟叁佰肆拾伍元陆角柒分"}
    assert embedded["payee"]["name"] == "张*三"


def test_receipt_row_and_file(settled, receipt_storage):
    transfer, receipt = settled
    data = issued_bytes(receipt)
    assert services.sha256_hex(data) == receipt.pdf_sha256
    assert receipt.key_id == keys.key_id()
    assert keys.verify(services.canonical_json(receipt.payload), receipt.signature)
    assert services.receipt_file(receipt.file_path).is_relative_to(receipt_storage / "receipts")
    assert receipt.kind == Receipt.Kind.TRANSFER and receipt.batch_ref == transfer.batch_ref


def test_issue_twice_makes_one_receipt_and_one_trace_event(world, now, receipt_storage):
    transfers = [world.transfer(amount_fen=100 + i) for i in range(3)]
    ids = [t.pk for t in transfers]
    assert issue_transfer_receipts(transfer_ids=ids, now=now) == 3
    assert issue_transfer_receipts(transfer_ids=ids, now=now + timedelta(minutes=1)) == 0
    assert Receipt.objects.count() == 3
    assert TraceEvent.objects.filter(kind="receipt.issued").count() == 3
    assert len(list((receipt_storage / "receipts").rglob("*.pdf"))) == 3


def test_only_settled_transfers_get_receipts(world, now):
    pending = world.transfer(state=TransferState.PENDING)
    failed = world.transfer(state=TransferState.FAILED, post=False)
    settled = world.transfer()
    assert issue_transfer_receipts(transfer_ids=[pending.pk, failed.pk, settled.pk, 999999], now=now) == 1
    assert list(Receipt.objects.values_list("transfer_id", flat=True)) == [settled.pk]


def test_racing_worker_loses_cleanly(world, now, receipt_storage):
    """Two workers build the same receipt; the second to insert keeps nothing and removes its file."""
    transfer = world.transfer()
    number = services.transfer_receipt_number(transfer, now=now)
    docs = [
        services.sign_and_render(services.transfer_payload(transfer, number=number, now=moment), services.transfer_page)
        for moment in (now, now + timedelta(seconds=1))
    ]
    rows = [services._receipt_row(d, now=now, transfer=transfer) for d in docs]
    assert docs[0].pdf_sha256 != docs[1].pdf_sha256
    assert len(services._store([(docs[0], rows[0])], now=now)) == 1
    assert services._store([(docs[1], rows[1])], now=now) == []
    assert Receipt.objects.get().pdf_sha256 == docs[0].pdf_sha256
    assert [p.name for p in (receipt_storage / "receipts").rglob("*.pdf")] == [rows[0].file_path.split("/")[-1]]
    assert TraceEvent.objects.filter(kind="receipt.issued").count() == 1


def test_genuine_receipt_verifies(settled):
    _, receipt = settled
    result = verify_receipt_pdf(pdf_bytes=issued_bytes(receipt))
    assert result.ok, result.reasons
    assert result.reasons == [] and result.notes == []
    assert result.receipt_number == receipt.number
    assert result.facts["payee"]["name"] == "张*三"


def test_any_changed_byte_fails(settled):
    _, receipt = settled
    data = bytearray(issued_bytes(receipt))
    # Change one character of the visible page's document info (a title the viewer shows).
    position = data.index(b"/Producer")
    data[position + 12] ^= 0x01
    result = verify_receipt_pdf(pdf_bytes=bytes(data))
    assert not result.ok
    assert codes(result) == {"file_altered"}


def _rebuild(receipt, *, payload_bytes, signature_block):
    """A forger re-renders the page with the same software and their own embedded files."""
    payload = json.loads(payload_bytes)
    attachments = [pdf.Attachment(pdf.PAYLOAD_ATTACHMENT, payload_bytes),
                   pdf.Attachment(pdf.SIGNATURE_ATTACHMENT, signature_block)]
    page = services.transfer_page(payload, code=receipt.verification_code, attachments=attachments)
    return pdf.render_receipt(page)


def _embedded(data):
    reader = pypdf.PdfReader(io.BytesIO(data))
    return reader.attachments["receipt.json"][0], reader.attachments["receipt.sig.json"][0]


def test_edited_amount_fails_signature(settled):
    _, receipt = settled
    payload_bytes, sig_block = _embedded(issued_bytes(receipt))
    payload = json.loads(payload_bytes)
    payload["amount"] = {"fen": 9934567, "yuan": "99345.67", "capitals": "玖万玖仟叁佰肆拾伍元陆角柒分"}
    forged = _rebuild(receipt, payload_bytes=services.canonical_json(payload), signature_block=sig_block)
    result = verify_receipt_pdf(pdf_bytes=forged)
    assert not result.ok
    assert {"signature_invalid", "file_altered", "data_altered", "amount_mismatch"} <= codes(result)


def test_swapped_attachment_from_another_genuine_receipt_fails(world, now, settled):
    _, receipt = settled
    other_transfer = world.transfer(amount_fen=50, payee=world.payee2)
    issue_transfer_receipts(transfer_ids=[other_transfer.pk], now=now)
    other = Receipt.objects.get(transfer=other_transfer)
    # The visible page of `receipt`, with the (genuinely signed) data of `other` embedded.
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(issued_bytes(receipt)))
    writer._root_object.pop("/Names")
    for name, value in zip(("receipt.json", "receipt.sig.json"), _embedded(issued_bytes(other))):
        writer.add_attachment(name, value)
    out = io.BytesIO()
    writer.write(out)
    result = verify_receipt_pdf(pdf_bytes=out.getvalue())
    assert not result.ok
    assert codes(result) == {"file_altered"}  # signature and ledger are fine: it's the file that lies


def test_signature_from_another_key_fails(settled):
    _, receipt = settled
    payload_bytes, sig_block = _embedded(issued_bytes(receipt))
    foreign = Ed25519PrivateKey.generate()
    block = json.loads(sig_block)
    block["signature"] = base64.b64encode(foreign.sign(payload_bytes)).decode()
    block["key_id"] = keys.key_id(foreign.public_key())
    forged = _rebuild(receipt, payload_bytes=payload_bytes, signature_block=services.canonical_json(block))
    result = verify_receipt_pdf(pdf_bytes=forged)
    assert not result.ok
    assert {"signature_invalid", "unknown_signing_key", "file_altered"} == codes(result)


def test_forged_key_id_claiming_the_service_key_still_fails(settled):
    _, receipt = settled
    payload_bytes, sig_block = _embedded(issued_bytes(receipt))
    block = json.loads(sig_block)
    block["signature"] = base64.b64encode(Ed25519PrivateKey.generate().sign(payload_bytes)).decode()
    forged = _rebuild(receipt, payload_bytes=payload_bytes, signature_block=services.canonical_json(block))
    assert codes(verify_receipt_pdf(pdf_bytes=forged)) == {"signature_invalid", "file_altered"}


def test_transfer_without_ledger_entries_fails(settled, ledger_tamper):
    transfer, receipt = settled
    LedgerEntry.objects.filter(transfer=transfer).delete()
    result = verify_receipt_pdf(pdf_bytes=issued_bytes(receipt))
    assert not result.ok
    assert codes(result) == {"transfer_missing"}


def test_transfer_gone_fails(settled, ledger_tamper):
    transfer, receipt = settled
    data = issued_bytes(receipt)
    Receipt.objects.all().delete()
    LedgerEntry.objects.filter(transfer=transfer).delete()
    Transfer.objects.filter(pk=transfer.pk).delete()
    result = verify_receipt_pdf(pdf_bytes=data)
    assert not result.ok
    assert codes(result) == {"unknown_receipt", "transfer_missing"}


def test_ledger_amount_and_payee_changed_fails(world, settled):
    transfer, receipt = settled
    Transfer.objects.filter(pk=transfer.pk).update(amount_fen=1, payee=world.payee2)
    assert codes(verify_receipt_pdf(pdf_bytes=issued_bytes(receipt))) == {"amount_mismatch", "payee_mismatch"}


def test_returned_later_is_genuine_with_a_note(settled):
    transfer, receipt = settled
    Transfer.objects.filter(pk=transfer.pk).update(state=TransferState.RETURNED)
    result = verify_receipt_pdf(pdf_bytes=issued_bytes(receipt))
    assert result.ok
    assert [n.code for n in result.notes] == ["transfer_returned"]


def test_not_a_pdf_and_no_embedded_data():
    assert codes(verify_receipt_pdf(pdf_bytes=b"hello")) == {"not_a_pdf"}
    plain = pdf.render_receipt(pdf.ReceiptPage(title="回单", subtitle="", number="R1", rows=[]))
    assert codes(verify_receipt_pdf(pdf_bytes=plain)) == {"no_embedded_data"}


def test_batch_receipt(world, now):
    transfers = [world.transfer(amount_fen=10000 * (i + 1), payee=world.payee if i % 2 else world.payee2)
                 for i in range(4)]
    failed = world.transfer(state=TransferState.FAILED, post=False)
    receipt = issue_batch_receipt(batch_ref="PAY-2025-03", now=now)
    assert receipt.kind == Receipt.Kind.BATCH and receipt.transfer is None
    assert receipt.number == f"B20250314{transfers[0].pk:010d}"
    assert receipt.payload["total"] == {"fen": 100000, "yuan": "1000.00", "capitals": "壹仟元整"}
    assert receipt.payload["counts"]["settled"] == 4 and receipt.payload["counts"]["failed"] == 1
    assert failed.pk not in receipt.payload["transfer_ids"]
    text = pypdf.PdfReader(io.BytesIO(issued_bytes(receipt))).pages[0].extract_text()
    assert "壹仟元整" in text and "¥1,000.00" in text and receipt.number in text
    assert verify_receipt_pdf(pdf_bytes=issued_bytes(receipt)).ok
    # Idempotent.
    assert issue_batch_receipt(batch_ref="PAY-2025-03", now=now + timedelta(hours=1)).pk == receipt.pk
    assert Receipt.objects.filter(kind=Receipt.Kind.BATCH).count() == 1
    # A transfer of the batch vanishing from the ledger breaks the summary.
    Transfer.objects.filter(pk=transfers[1].pk).update(amount_fen=1)
    assert codes(verify_receipt_pdf(pdf_bytes=issued_bytes(receipt))) == {"batch_mismatch"}


def test_batch_receipt_refused_while_unfinished(world, now):
    world.transfer()
    world.transfer(state=TransferState.UNKNOWN, post=False)
    with pytest.raises(services.ReceiptError) as excinfo:
        issue_batch_receipt(batch_ref="PAY-2025-03", now=now)
    assert excinfo.value.code == "batch_not_finished"
    with pytest.raises(services.ReceiptError) as excinfo:
        issue_batch_receipt(batch_ref="NO-SUCH-BATCH", now=now)
    assert excinfo.value.code == "batch_not_found"


def test_task_is_registered_and_idempotent(world):
    from config.celery import app
    from treasury.receipts.tasks import issue_transfer_receipts_task

    registered = app.tasks["treasury.issue_transfer_receipts"]
    assert registered.name == issue_transfer_receipts_task.name and registered.acks_late
    assert registered.run.__module__ == "treasury.receipts.tasks"
    transfer = world.transfer()
    # get(disable_sync_subtasks=False): Celery's no-join-inside-a-task guard is one flag for the whole process,
    # set while the live server's thread runs an eager task for a sandbox's call.
    for expected in (1, 0):  # issued, then nothing more
        result = issue_transfer_receipts_task.apply(kwargs={"transfer_ids": [transfer.pk]})
        assert result.get(disable_sync_subtasks=False) == expected
    assert Receipt.objects.count() == 1


def test_command_genuine_and_not(settled, tmp_path, capsys):
    _, receipt = settled
    genuine = tmp_path / "genuine.pdf"
    genuine.write_bytes(issued_bytes(receipt))
    call_command("verify_receipt", str(genuine))
    assert "GENUINE" in capsys.readouterr().out
    edited = tmp_path / "edited.pdf"
    edited.write_bytes(issued_bytes(receipt).replace(b"/Producer", b"/Produces", 1))
    with pytest.raises(SystemExit) as excinfo:
        call_command("verify_receipt", str(edited))
    assert excinfo.value.code == 1
    out = capsys.readouterr().out
    assert "NOT GENUINE" in out and "[file_altered]" in out
