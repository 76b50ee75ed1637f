"""Issuing and verifying receipts (电子回单).

Issuing: the structured data of a receipt (payload) is serialised canonically, signed with the
service's Ed25519 key, embedded in the PDF with its signature, and the SHA-256 of the exact PDF
bytes is stored. Receipt numbers are deterministic, so issuing is idempotent: a second run, or a
second worker racing the first, inserts nothing and removes the file it made.

Verifying a PDF checks, and names every failure it finds:
  the embedded data and signature are there; the signature verifies with the service key;
  the receipt number exists; the file is byte for byte the one issued; the embedded data is the
  data issued; the transfer(s) exist in the ledger, are settled (or were later returned or reversed:
  said as a note), and amount, payer and payee match.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum

from treasury import keys
from treasury.identifiers import mask_name, mask_wallet_id
from treasury.models import Transfer, TransferState, Wallet
from treasury.money import fen_to_capitals, fen_to_yuan_str, format_yuan
from treasury.services.transfers import transfer_stream_key
from treasury.trace.services import EventSpec, append_events

from . import pdf
from .models import Receipt

logger = logging.getLogger(__name__)

PAYLOAD_FORMAT = "ecny-receipt"
PAYLOAD_VERSION = 1
SIGNATURE_ALGORITHM = "Ed25519"
DISPLAY_TZ = ZoneInfo("Asia/Shanghai")
ISSUE_CHUNK = 500  # transfers per insert/trace transaction
DEFAULT_ISSUER_NAME = "数字人民币财政支付服务平台"
# A settled transfer that later came back: the receipt stays genuine, verification says so.
LATER_STATES = {TransferState.RETURNED: "transfer_returned", TransferState.REVERSED: "transfer_reversed"}
UNFINISHED_STATES = (TransferState.PENDING, TransferState.SUBMITTED, TransferState.UNKNOWN)


class ReceiptError(Exception):
    """A receipt cannot be issued; `code` is for API clients, the message for people."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def canonical_json(payload: dict) -> bytes:
    """The exact bytes a receipt's signature covers (and the embedded attachment holds)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verification_code_for(signature_b64: str) -> str:
    """10 base32 characters derived from the signature: unguessable without the service key."""
    digest = hashlib.sha256(b"ecny-receipt-verification-code\x00" + signature_b64.encode("ascii")).digest()
    return base64.b32encode(digest).decode("ascii")[:10]


def verification_url(number: str, code: str) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/receipts/verify/{number}/?c={code}"


def issuer_name() -> str:
    return getattr(settings, "RECEIPT_ISSUER_NAME", "") or DEFAULT_ISSUER_NAME


def _local(moment: datetime | None) -> datetime | None:
    return moment.astimezone(DISPLAY_TZ) if moment else None


def _local_text(moment: datetime | None) -> str:
    local = _local(moment)
    return local.strftime("%Y-%m-%d %H:%M:%S") if local else ""


def _party(wallet: Wallet) -> dict:
    """A payer or payee as the receipt shows it: persons masked, organizations in full."""
    personal = wallet.is_personal
    return {
        "holder": "person" if personal else "organization",
        "name": mask_name(wallet.holder_name) if personal else wallet.holder_name,
        "wallet_id": mask_wallet_id(wallet.wallet_id) if personal else wallet.wallet_id,
        "operator": wallet.operator.name,
    }


def transfer_receipt_number(transfer: Transfer, *, now: datetime) -> str:
    business_day = _local(transfer.settled_at or now)
    return f"R{business_day:%Y%m%d}{transfer.pk:010d}"


def batch_receipt_number(*, first_transfer_id: int, business_moment: datetime) -> str:
    return f"B{_local(business_moment):%Y%m%d}{first_transfer_id:010d}"


def transfer_payload(transfer: Transfer, *, number: str, now: datetime) -> dict:
    return {
        "format": PAYLOAD_FORMAT,
        "version": PAYLOAD_VERSION,
        "kind": Receipt.Kind.TRANSFER.value,
        "receipt_number": number,
        "issued_at": now.astimezone(dt_timezone.utc).isoformat(timespec="seconds"),
        "issuer": issuer_name(),
        "currency": "CNY",
        "amount": {
            "fen": transfer.amount_fen,
            "yuan": fen_to_yuan_str(transfer.amount_fen),
            "capitals": fen_to_capitals(transfer.amount_fen),
        },
        "payer": _party(transfer.payer),
        "payee": _party(transfer.payee),
        "transfer": {
            "id": transfer.pk,
            "idempotency_key": transfer.idempotency_key,
            "operator_txn_id": transfer.operator_txn_id,
            "state": transfer.state,
            "settled_at": _local(transfer.settled_at).isoformat() if transfer.settled_at else None,
            "batch_ref": transfer.batch_ref,
            "source_ref": transfer.source_ref,
            "purpose_code": transfer.purpose_code,
            "memo": transfer.memo,
        },
    }


def _state_label(state: str) -> str:
    try:
        return str(TransferState(state).label)
    except ValueError:
        return state


def transfer_page(payload: dict, *, code: str, with_qr: bool = True, attachments=()) -> pdf.ReceiptPage:
    t, payer, payee, amount = payload["transfer"], payload["payer"], payload["payee"], payload["amount"]
    purpose = " ".join(part for part in (t["purpose_code"], t["memo"]) if part) or "-"
    settled = datetime.fromisoformat(t["settled_at"]) if t["settled_at"] else None
    rows = [
        ("交易时间", _local_text(settled) or "-"),
        ("付款人", payer["name"]),
        ("付款钱包", payer["wallet_id"]),
        ("收款人", payee["name"]),
        ("收款钱包", payee["wallet_id"]),
        ("金额（小写）", format_yuan(amount["fen"])),
        ("金额（大写）", "人民币" + amount["capitals"]),
        ("用途", purpose),
        ("来源单据", t["source_ref"] or "-"),
        ("转账编号", str(t["id"])),
        ("幂等键", t["idempotency_key"]),
        ("运营机构流水号", t["operator_txn_id"] or "-"),
        ("状态", _state_label(t["state"])),
        ("运营机构", payer["operator"]),
        ("出具机构", payload["issuer"]),
    ]
    return _page(payload, code=code, title="数字人民币电子回单", subtitle="e-CNY payment receipt", rows=rows,
                 with_qr=with_qr, attachments=attachments)


def _page(payload: dict, *, code: str, title: str, subtitle: str, rows, with_qr: bool, attachments) -> pdf.ReceiptPage:
    return pdf.ReceiptPage(
        title=title,
        subtitle=subtitle,
        number=payload["receipt_number"],
        rows=rows,
        footer_lines=_footer(payload, code),
        verification_code=code,
        verification_url=verification_url(payload["receipt_number"], code) if with_qr else "",
        attachments=list(attachments),
        author=payload["issuer"],
    )


def _footer(payload: dict, code: str) -> list[str]:
    issued = _local_text(datetime.fromisoformat(payload["issued_at"]))
    return [
        f"出具时间 {issued}　本回单内嵌结构化数据（receipt.json）及电子签名（receipt.sig.json）。",
        f"验证：扫描二维码，或在 {settings.PUBLIC_BASE_URL.rstrip('/')}/receipts/verify/ 上传本文件（验证码 {code}）。",
    ]


def _signature_block(*, number: str, payload_bytes: bytes, signature: str, key_id: str) -> bytes:
    return canonical_json(
        {
            "alg": SIGNATURE_ALGORITHM,
            "key_id": key_id,
            "receipt_number": number,
            "payload_sha256": sha256_hex(payload_bytes),
            "signature": signature,
            "signed_attachment": pdf.PAYLOAD_ATTACHMENT,
        }
    )


@dataclass(frozen=True)
class SignedDocument:
    number: str
    payload: dict
    payload_sha256: str
    signature: str
    key_id: str
    verification_code: str
    pdf_bytes: bytes
    pdf_sha256: str


def sign_and_render(payload: dict, page_builder) -> SignedDocument:
    """Sign a payload and render its PDF with the data and signature embedded. No database."""
    payload_bytes = canonical_json(payload)
    signature = keys.sign(payload_bytes)
    key_id = keys.key_id()
    code = verification_code_for(signature)
    number = payload["receipt_number"]
    attachments = [
        pdf.Attachment(pdf.PAYLOAD_ATTACHMENT, payload_bytes, "application/json", "电子回单结构化数据 (receipt data)"),
        pdf.Attachment(
            pdf.SIGNATURE_ATTACHMENT,
            _signature_block(number=number, payload_bytes=payload_bytes, signature=signature, key_id=key_id),
            "application/json",
            "电子签名 (Ed25519 signature over receipt.json)",
        ),
    ]
    pdf_bytes = pdf.render_receipt(page_builder(payload, code=code, attachments=attachments))
    return SignedDocument(
        number=number,
        payload=payload,
        payload_sha256=sha256_hex(payload_bytes),
        signature=signature,
        key_id=key_id,
        verification_code=code,
        pdf_bytes=pdf_bytes,
        pdf_sha256=sha256_hex(pdf_bytes),
    )


def _relative_path(number: str, pdf_sha256: str, now: datetime) -> str:
    # The digest in the name keeps two racing workers from overwriting each other's file.
    local = _local(now)
    return f"receipts/{local:%Y/%m}/{number}-{pdf_sha256[:12]}.pdf"


def receipt_file(relative_path: str) -> Path:
    return Path(settings.MEDIA_ROOT) / relative_path


def _write_file(relative_path: str, data: bytes) -> None:
    target = receipt_file(relative_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".pdf")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)  # readers see the whole file or none
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_files(relative_paths) -> None:
    for relative_path in relative_paths:
        receipt_file(relative_path).unlink(missing_ok=True)


def _store(documents: list[tuple[SignedDocument, Receipt]], *, now: datetime) -> list[Receipt]:
    """Write files, insert rows (conflicts ignored), append trace events; return the rows this call made.

    Files are written before the rows so a row never points at a missing file; a crash in between
    leaves an orphan file (harmless, never referenced) rather than a receipt without its PDF.
    """
    written = []
    try:
        for document, receipt in documents:
            _write_file(receipt.file_path, document.pdf_bytes)
            written.append(receipt.file_path)
        with transaction.atomic():
            Receipt.objects.bulk_create([r for _, r in documents], ignore_conflicts=True, batch_size=500)
            numbers = [r.number for _, r in documents]
            stored = dict(Receipt.objects.filter(number__in=numbers).values_list("number", "pdf_sha256"))
            mine = [r for _, r in documents if stored.get(r.number) == r.pdf_sha256]
            _trace_issued(mine, now=now)
    except BaseException:
        _remove_files(written)
        raise
    mine_paths = {r.file_path for r in mine}
    _remove_files(p for p in written if p not in mine_paths)  # another worker issued these first
    return mine


def _trace_issued(receipts: list[Receipt], *, now: datetime) -> None:
    by_stream: dict[str, list[EventSpec]] = {}
    for receipt in receipts:
        if receipt.kind == Receipt.Kind.TRANSFER:
            transfer_id = receipt.payload["transfer"]["id"]
            subject_type, subject_id = "treasury.transfer", str(transfer_id)
            amount_fen, source_ref = receipt.payload["amount"]["fen"], receipt.payload["transfer"]["source_ref"]
            stream_key = transfer_stream_key(batch_ref=receipt.batch_ref, transfer_id=transfer_id)
        else:
            subject_type, subject_id = "receipts.batch", receipt.batch_ref
            amount_fen, source_ref = receipt.payload["total"]["fen"], ""
            stream_key = receipt.batch_ref
        by_stream.setdefault(stream_key, []).append(
            EventSpec(
                kind="receipt.issued",
                subject_type=subject_type,
                subject_id=subject_id,
                amount_fen=amount_fen,
                source_ref=source_ref,
                data={"receipt_number": receipt.number, "kind": receipt.kind, "pdf_sha256": receipt.pdf_sha256},
            )
        )
    for stream_key in sorted(by_stream):  # a fixed order, so two writers lock streams alike
        append_events(stream_key=stream_key, events=by_stream[stream_key], now=now)


# ---------------------------------------------------------------------------------------------
# Issuing
# ---------------------------------------------------------------------------------------------


def issue_transfer_receipts(*, transfer_ids: list[int], now: datetime) -> int:
    """Issue a receipt for each SETTLED transfer among transfer_ids that has none yet.

    Returns how many receipts this call issued. Idempotent and safe to run concurrently: a
    transfer that already has a receipt (or gets one from another worker meanwhile) is skipped,
    and the file this call made for it is removed. PDFs are built outside any transaction;
    rows are inserted in bulk, ISSUE_CHUNK at a time, with their trace events.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    ids = sorted({int(pk) for pk in transfer_ids})
    issued = 0
    for start in range(0, len(ids), ISSUE_CHUNK):
        chunk = ids[start : start + ISSUE_CHUNK]
        transfers = list(
            Transfer.objects.filter(pk__in=chunk, state=TransferState.SETTLED, receipt__isnull=True)
            .select_related("payer__operator", "payee__operator")
            .order_by("pk")
        )
        documents = []
        for transfer in transfers:
            number = transfer_receipt_number(transfer, now=now)
            document = sign_and_render(transfer_payload(transfer, number=number, now=now), transfer_page)
            documents.append((document, _receipt_row(document, now=now, transfer=transfer)))
        issued += len(_store(documents, now=now))
    return issued


def _receipt_row(document: SignedDocument, *, now: datetime, transfer: Transfer | None = None,
                 batch_ref: str = "", organization_id: int | None = None) -> Receipt:
    return Receipt(
        number=document.number,
        kind=Receipt.Kind.TRANSFER if transfer else Receipt.Kind.BATCH,
        transfer=transfer,
        batch_ref=transfer.batch_ref if transfer else batch_ref,
        organization_id=transfer.organization_id if transfer else organization_id,
        payload=document.payload,
        payload_sha256=document.payload_sha256,
        signature=document.signature,
        key_id=document.key_id,
        verification_code=document.verification_code,
        file_path=_relative_path(document.number, document.pdf_sha256, now),
        pdf_sha256=document.pdf_sha256,
        pdf_size=len(document.pdf_bytes),
        issued_at=now,
    )


def batch_page(payload: dict, *, code: str, with_qr: bool = True, attachments=()) -> pdf.ReceiptPage:
    total, counts, payer = payload["total"], payload["counts"], payload["payer"]
    last = datetime.fromisoformat(payload["last_settled_at"]) if payload["last_settled_at"] else None
    rows = [
        ("批次", payload["batch_ref"]),
        ("最后结算时间", _local_text(last) or "-"),
        ("付款人", payer["name"]),
        ("付款钱包", payer["wallet_id"]),
        ("成功笔数", str(counts["settled"])),
        ("金额合计（小写）", format_yuan(total["fen"])),
        ("金额合计（大写）", "人民币" + total["capitals"]),
        ("失败/取消笔数", f"{counts['failed']} / {counts['cancelled']}"),
        ("已退回/冲正笔数", f"{counts['returned']} / {counts['reversed']}"),
        ("转账编号范围", f"{payload['transfer_ids'][0]} - {payload['transfer_ids'][-1]}"),
        ("运营机构", payer["operator"]),
        ("出具机构", payload["issuer"]),
    ]
    return _page(payload, code=code, title="数字人民币批量汇总回单", subtitle="e-CNY batch summary receipt", rows=rows,
                 with_qr=with_qr, attachments=attachments)


def issue_batch_receipt(*, batch_ref: str, now: datetime) -> Receipt:
    """Issue the summary receipt of a finished batch (count and total of its settled transfers).

    Idempotent: returns the existing summary receipt if there is one (also when another worker
    issued it concurrently).

    Raises ReceiptError: batch_not_found, batch_not_finished (transfers still pending, submitted or
    unknown), nothing_settled.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    existing = Receipt.objects.filter(kind=Receipt.Kind.BATCH, batch_ref=batch_ref).first()
    if existing:
        return existing
    transfers = Transfer.objects.filter(batch_ref=batch_ref)
    states = dict(transfers.values_list("state").annotate(n=Count("pk")).order_by())
    if not states:
        raise ReceiptError(f"批次不存在: {batch_ref} (no transfers in this batch)", "batch_not_found")
    if any(states.get(s) for s in UNFINISHED_STATES):
        raise ReceiptError(
            f"批次尚未完成: {batch_ref} (the batch still has pending, submitted or unknown transfers)",
            "batch_not_finished",
        )
    settled = transfers.filter(state=TransferState.SETTLED)
    summary = settled.aggregate(total=Sum("amount_fen"), first=Min("pk"), last_at=Max("settled_at"))
    if not summary["first"]:
        raise ReceiptError(f"批次没有已结算的转账: {batch_ref} (nothing settled)", "nothing_settled")
    ids = list(settled.order_by("pk").values_list("pk", flat=True))
    payer_ids = set(settled.values_list("payer_id", flat=True).distinct())
    first = settled.select_related("payer__operator").order_by("pk").first()
    if len(payer_ids) == 1:
        payer = _party(first.payer)
    else:
        payer = {"holder": "several", "name": f"多个付款钱包 ({len(payer_ids)})", "wallet_id": "-",
                 "operator": first.payer.operator.name}
    total = summary["total"]
    number = batch_receipt_number(first_transfer_id=summary["first"], business_moment=summary["last_at"] or now)
    payload = {
        "format": PAYLOAD_FORMAT,
        "version": PAYLOAD_VERSION,
        "kind": Receipt.Kind.BATCH.value,
        "receipt_number": number,
        "issued_at": now.astimezone(dt_timezone.utc).isoformat(timespec="seconds"),
        "issuer": issuer_name(),
        "currency": "CNY",
        "batch_ref": batch_ref,
        "payer": payer,
        "total": {"fen": total, "yuan": fen_to_yuan_str(total), "capitals": fen_to_capitals(total)},
        "counts": {
            "settled": len(ids),
            "failed": states.get(TransferState.FAILED, 0),
            "cancelled": states.get(TransferState.CANCELLED, 0),
            "returned": states.get(TransferState.RETURNED, 0),
            "reversed": states.get(TransferState.REVERSED, 0),
        },
        "last_settled_at": _local(summary["last_at"]).isoformat() if summary["last_at"] else None,
        "transfer_ids": ids,
    }
    document = sign_and_render(payload, batch_page)
    row = _receipt_row(document, now=now, batch_ref=batch_ref, organization_id=first.organization_id)
    _store([(document, row)], now=now)
    return Receipt.objects.get(kind=Receipt.Kind.BATCH, batch_ref=batch_ref)


# ---------------------------------------------------------------------------------------------
# Verifying
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    code: str
    message: str


@dataclass
class VerificationResult:
    ok: bool
    receipt_number: str = ""
    reasons: list[Finding] = field(default_factory=list)  # why it is not genuine; empty when ok
    notes: list[Finding] = field(default_factory=list)  # true facts worth knowing (e.g. returned later)
    facts: dict = field(default_factory=dict)  # key facts of the receipt as issued (masked)

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "receipt_number": self.receipt_number,
            "reasons": [{"code": f.code, "message": f.message} for f in self.reasons],
            "notes": [{"code": f.code, "message": f.message} for f in self.notes],
            "facts": self.facts,
        }


MESSAGES = {
    "too_large": "文件过大 (the file is too large to be a receipt)",
    "not_a_pdf": "不是可读取的PDF文件 (not a readable PDF file)",
    "no_embedded_data": "文件中没有内嵌的回单数据或签名 (the receipt data or its signature is not embedded)",
    "malformed_embedded_data": "内嵌的回单数据无法读取 (the embedded receipt data cannot be read)",
    "unknown_signing_key": "签名密钥不是本服务的密钥 (signed with a key that is not this service's key)",
    "signature_invalid": "签名无效：内嵌数据不是本服务签发的 (the signature over the embedded data does not verify)",
    "unknown_receipt": "回单编号不存在 (no receipt with this number was issued)",
    "file_altered": "文件与出具时不一致，已被修改 (the file is not the one issued: it was changed)",
    "data_altered": "内嵌数据与出具时不一致 (the embedded data is not the data issued)",
    "transfer_missing": "账簿中没有这笔转账 (the transfer does not exist in the ledger)",
    "transfer_not_settled": "账簿中这笔转账未结算 (the transfer is not settled in the ledger)",
    "amount_mismatch": "金额与账簿不符 (the amount does not match the ledger)",
    "payer_mismatch": "付款人与账簿不符 (the payer does not match the ledger)",
    "payee_mismatch": "收款人与账簿不符 (the payee does not match the ledger)",
    "batch_mismatch": "批次汇总与账簿不符 (the batch summary does not match the ledger)",
    "transfer_returned": "这笔转账结算后已退回 (the transfer was settled and later returned)",
    "transfer_reversed": "这笔转账结算后已冲正 (the transfer was settled and later reversed)",
}


def finding(code: str, detail: str = "") -> Finding:
    message = MESSAGES[code]
    return Finding(code, f"{message}: {detail}" if detail else message)


def _embedded(pdf_bytes: bytes) -> tuple[bytes | None, bytes | None]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf_bytes), strict=False)
    attachments = reader.attachments
    def first(name):
        values = attachments.get(name) if name in attachments else None
        return values[0] if values else None
    return first(pdf.PAYLOAD_ATTACHMENT), first(pdf.SIGNATURE_ATTACHMENT)


def _part(payload: dict, name: str) -> dict:
    """A section of embedded data (`payload["transfer"]`, ...): a dict, or an empty one when the (unsigned, perhaps
    hostile) data holds anything else there."""
    value = payload.get(name)
    return value if isinstance(value, dict) else {}


def _refuse_fraction(text: str):
    # Money is whole fen and ids are integers: nothing issued holds a fraction or an exponent ("1.5", "1e999").
    raise ValueError(f"not a whole number: {text[:20]}")


def _refuse_constant(name: str):
    raise ValueError(f"not JSON: {name}")  # NaN, Infinity: Python's json reads them, no JSON document holds them


def _strict_json(data: bytes):
    """JSON as the service writes it: whole numbers only, no NaN or infinite ones, which nothing issued holds and
    no JSON answer can carry (the API would fail to render the facts read from them)."""
    return json.loads(data, parse_constant=_refuse_constant, parse_float=_refuse_fraction)


def key_facts(payload: dict) -> dict:
    facts = {"receipt_number": payload.get("receipt_number"), "kind": payload.get("kind"),
             "issued_at": payload.get("issued_at"), "issuer": payload.get("issuer")}
    if payload.get("kind") == Receipt.Kind.BATCH:
        total = _part(payload, "total")
        if isinstance(total.get("fen"), int):
            facts["amount_display"] = format_yuan(total["fen"])
        facts.update(batch_ref=payload.get("batch_ref"), total=payload.get("total"), counts=payload.get("counts"),
                     payer=payload.get("payer"))
    else:
        t = _part(payload, "transfer")
        amount = _part(payload, "amount")
        if isinstance(amount.get("fen"), int):
            facts["amount_display"] = format_yuan(amount["fen"])
        facts.update(amount=payload.get("amount"), payer=payload.get("payer"), payee=payload.get("payee"),
                     transfer_id=t.get("id"), settled_at=t.get("settled_at"), source_ref=t.get("source_ref"),
                     operator_txn_id=t.get("operator_txn_id"))
    return facts


def verify_receipt_pdf(*, pdf_bytes: bytes) -> VerificationResult:
    """Is this PDF a genuine receipt of this service, for money that is in the ledger?

    Never raises for bad input: every problem is a reason in the result.
    """
    limit = getattr(settings, "RECEIPT_MAX_UPLOAD_BYTES", 5 * 1024 * 1024)
    if len(pdf_bytes) > limit:
        return VerificationResult(ok=False, reasons=[finding("too_large")])
    try:
        payload_bytes, signature_bytes = _embedded(pdf_bytes)
    except Exception:  # untrusted input: any parser failure means "not a readable PDF"
        logger.info("receipt verification: unreadable PDF (%d bytes)", len(pdf_bytes))
        return VerificationResult(ok=False, reasons=[finding("not_a_pdf")])
    if payload_bytes is None or signature_bytes is None:
        return VerificationResult(ok=False, reasons=[finding("no_embedded_data")])
    try:
        payload = _strict_json(payload_bytes)
        signature_block = _strict_json(signature_bytes)
        if not isinstance(payload, dict) or not isinstance(signature_block, dict):
            raise TypeError
        signature = signature_block["signature"]
        number = str(payload["receipt_number"])
        if not isinstance(signature, str):
            raise TypeError
    except (ValueError, KeyError, TypeError, RecursionError):
        return VerificationResult(ok=False, reasons=[finding("malformed_embedded_data")])

    result = VerificationResult(ok=False, receipt_number=number, facts=key_facts(payload))
    reasons = result.reasons
    if signature_block.get("key_id") != keys.key_id():
        reasons.append(finding("unknown_signing_key", str(signature_block.get("key_id"))[:32]))
    if not keys.verify(payload_bytes, signature):
        reasons.append(finding("signature_invalid"))

    receipt = Receipt.objects.filter(number=number).first() if _storable(number) else None
    if receipt is None:
        reasons.append(finding("unknown_receipt", number))
    else:
        if not hmac.compare_digest(sha256_hex(pdf_bytes), receipt.pdf_sha256):
            reasons.append(finding("file_altered"))
        if not hmac.compare_digest(sha256_hex(payload_bytes), receipt.payload_sha256):
            reasons.append(finding("data_altered"))

    # The ledger: checked against the embedded data, whatever the receipt table says.
    if payload.get("kind") == Receipt.Kind.BATCH:
        _check_batch_against_ledger(payload, result)
    else:
        _check_transfer_against_ledger(payload, result)
    result.ok = not reasons
    return result


def _check_transfer_against_ledger(payload: dict, result: VerificationResult) -> None:
    reasons = result.reasons
    try:
        transfer_id = int(payload["transfer"]["id"])
        amount_fen = int(payload["amount"]["fen"])
    except (KeyError, TypeError, ValueError):
        reasons.append(finding("malformed_embedded_data"))
        return
    transfer = (
        Transfer.objects.filter(pk=transfer_id).select_related("payer__operator", "payee__operator").first()
    )
    if transfer is None:
        reasons.append(finding("transfer_missing", str(transfer_id)))
        return
    if transfer.state in LATER_STATES:
        result.notes.append(finding(LATER_STATES[transfer.state]))
    elif transfer.state != TransferState.SETTLED:
        reasons.append(finding("transfer_not_settled", _state_label(transfer.state)))
    if not transfer.entries.exists():
        reasons.append(finding("transfer_missing", "没有记账分录 (no ledger entries)"))
    if transfer.amount_fen != amount_fen:
        reasons.append(finding("amount_mismatch"))
    if _party(transfer.payer) != payload.get("payer"):
        reasons.append(finding("payer_mismatch"))
    if _party(transfer.payee) != payload.get("payee"):
        reasons.append(finding("payee_mismatch"))


def _check_batch_against_ledger(payload: dict, result: VerificationResult) -> None:
    reasons = result.reasons
    try:
        if not isinstance(payload["transfer_ids"], list):
            raise TypeError
        ids = [int(pk) for pk in payload["transfer_ids"]]
        total_fen = int(payload["total"]["fen"])
        batch_ref = str(payload["batch_ref"])
    except (KeyError, TypeError, ValueError):
        reasons.append(finding("malformed_embedded_data"))
        return
    found = _batch_in_ledger(batch_ref=batch_ref, ids=ids)
    if found["n"] != len(ids):
        reasons.append(finding("transfer_missing", f"{len(ids) - found['n']}"))
    if found["settled"] + found["later"] != found["n"]:
        reasons.append(finding("transfer_not_settled"))
    if found["total"] != total_fen or _part(payload, "counts").get("settled") != len(ids):
        reasons.append(finding("batch_mismatch"))
    if found["later"]:
        result.notes.append(Finding("transfers_returned_later",
                                    f"批次中 {found['later']} 笔转账结算后已退回或冲正 "
                                    f"({found['later']} transfers were later returned or reversed)"))


BATCH_CHECK_CHUNK = 2000  # transfer ids a query: SQLite refuses statements with too many parameters
_LARGEST_ID = 2 ** 63 - 1  # a 64-bit key's; SQLite refuses a larger number in a query (OverflowError)


def _batch_in_ledger(*, batch_ref: str, ids: list[int]) -> dict:
    """How many of `ids` are transfers of the batch (n), their total, and how many are settled or came back later.

    The ids come from the file being checked, forged perhaps: the database reads at most the batch's own
    transfers, a chunk of ids a query, whatever number of ids the file lists (a list longer than the batch, or
    repeating an id, cannot be the batch's: it is told apart without a query)."""
    found = {"n": 0, "total": 0, "later": 0, "settled": 0}
    unique = sorted({pk for pk in ids if 0 < pk <= _LARGEST_ID})  # another number is no transfer's
    if not unique or not _storable(batch_ref):
        return found
    batch = Transfer.objects.filter(batch_ref=batch_ref)
    if len(unique) > batch.count():
        unique = []  # more transfers than the batch holds: say none of them is there rather than read them all
    for start in range(0, len(unique), BATCH_CHECK_CHUNK):
        part = batch.filter(pk__in=unique[start:start + BATCH_CHECK_CHUNK]).aggregate(
            n=Count("pk"), total=Sum("amount_fen"), later=Count("pk", filter=Q(state__in=list(LATER_STATES))),
            settled=Count("pk", filter=Q(state=TransferState.SETTLED)))
        for key in found:
            found[key] += part[key] or 0
    return found


def _storable(text: str) -> bool:
    """Could a text column hold this? (PostgreSQL refuses a NUL character even in a query's parameter.)"""
    return "\x00" not in text


def verify_issued_receipt(*, receipt: Receipt) -> VerificationResult:
    """Check a stored receipt (what the QR page shows): its signature and the ledger, no file needed."""
    payload = receipt.payload
    result = VerificationResult(ok=False, receipt_number=receipt.number, facts=key_facts(payload))
    if not keys.verify(canonical_json(payload), receipt.signature):
        result.reasons.append(finding("signature_invalid"))
    if payload.get("kind") == Receipt.Kind.BATCH:
        _check_batch_against_ledger(payload, result)
    else:
        _check_transfer_against_ledger(payload, result)
    result.ok = not result.reasons
    return result
