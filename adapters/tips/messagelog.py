"""Writing and reading the TIPS message log (adapters.tips.models.TipsMessage).

Bodies are stored whole; above COMPRESS_ABOVE_BYTES zlib-compressed (level 1), like the budget log.
"""
from __future__ import annotations

import logging
import zlib

from adapters.tips.models import TipsMessage
from adapters.xml.display import PersonalElements, shown_xml

logger = logging.getLogger(__name__)

COMPRESS_ABOVE_BYTES = 4096
DISPLAY_MAX_BYTES = 256 * 1024


def _stored(body: bytes) -> tuple[bytes, str]:
    if len(body) > COMPRESS_ABOVE_BYTES:
        return zlib.compress(body, 1), TipsMessage.Encoding.ZLIB
    return body, TipsMessage.Encoding.PLAIN


def record_message(*, direction: str, body: bytes, msg_no: str = "", msg_id: str = "", msg_ref: str = "",
                   key: str = "", peer: str = "", signature_valid: bool | None = None, result: str = "",
                   error_text: str = "", http_status: int | None = None, duration_ms: int = 0,
                   attempt: int = 1) -> TipsMessage | None:
    """Append one message to the log. A failure to log is logged loudly and never breaks the exchange."""
    try:
        stored, encoding = _stored(body or b"")
        return TipsMessage.objects.create(
            direction=direction, msg_no=msg_no[:4], msg_id=msg_id[:20], msg_ref=msg_ref[:20], key=key[:64],
            peer=peer[:12], body=stored, body_encoding=encoding, body_size=len(body or b""),
            signature_valid=signature_valid, result=result[:8], error_text=error_text[:2000], http_status=http_status,
            duration_ms=max(0, int(duration_ms)), attempt=max(1, attempt))
    except Exception:
        logger.exception("TIPS message log: could not record %s %s %s", direction, msg_no, msg_id)
        return None


def body_bytes(message: TipsMessage) -> bytes:
    data = bytes(message.body or b"")
    return zlib.decompress(data) if message.body_encoding == TipsMessage.Encoding.ZLIB else data


# What the log's pages and API mask (adapters.xml.display): wallets, taxpayers' and payers' names and codes, free
# text. The download keeps the message as it travelled.
PERSONAL = PersonalElements(
    accounts=frozenset({"PayAcct", "PayeeAcct"}),
    names=frozenset({"TaxPayName", "HandOrgName", "PayeeName", "PayerName"}),
    ids=frozenset({"TaxPayCode", "PayerCode", "PayerID", "AddWord", "XAddWord", "Remark", "CancelReason", "StopReason"}),
)


def shown_body(data: bytes, *, max_bytes: int = DISPLAY_MAX_BYTES) -> tuple[str, bool]:
    """(text to show, cut short?): re-indented, personal data masked."""
    return shown_xml(data, max_bytes=max_bytes, personal=PERSONAL)
