"""Writing and reading the message log's bodies (adapters.budget.models.BudgetMessage).

Storage policy: bodies are stored whole; above COMPRESS_ABOVE_BYTES they are zlib-compressed (level
1: a 14 MB voucher compresses in ~20 ms to ~0.6 MB, since its details repeat the same tags). A
retried request is compressed once and the same stored bytes are reused for each attempt.
"""
from __future__ import annotations

import zlib

from adapters.budget.models import BudgetMessage
from adapters.xml.display import PersonalElements, shown_xml

COMPRESS_ABOVE_BYTES = 4096
# The detail page pretty-prints at most this much of a body; the download link gives all of it.
DISPLAY_MAX_BYTES = 256 * 1024


def _stored(body: bytes) -> tuple[bytes, str]:
    if len(body) > COMPRESS_ABOVE_BYTES:
        return zlib.compress(body, 1), BudgetMessage.Encoding.ZLIB
    return body, BudgetMessage.Encoding.PLAIN


def record_message(*, operation: str, key: str, request_body: bytes, response_body: bytes, outcome: str,
                   code: str, error_text: str, http_status: int | None, duration_ms: int, attempt: int,
                   stored_request: tuple[bytes, str] | None = None,
                   direction: str = BudgetMessage.Direction.OUTBOUND) -> tuple[bytes, str]:
    """Append one attempt to the log. Returns the stored form of the request, for the next attempt."""
    stored_request = stored_request or _stored(request_body)
    response, response_encoding = _stored(response_body or b"")
    BudgetMessage.objects.create(
        operation=operation, key=key[:128], direction=direction,
        request_body=stored_request[0], request_encoding=stored_request[1], request_size=len(request_body),
        response_body=response, response_encoding=response_encoding, response_size=len(response_body or b""),
        outcome=outcome, code=code[:64], error_text=error_text, http_status=http_status,
        duration_ms=max(0, duration_ms), attempt=attempt,
    )
    return stored_request


def body_bytes(stored, encoding: str) -> bytes:
    """A stored body back to the bytes that were sent or received."""
    data = bytes(stored or b"")
    return zlib.decompress(data) if encoding == BudgetMessage.Encoding.ZLIB else data


def request_bytes(message: BudgetMessage) -> bytes:
    return body_bytes(message.request_body, message.request_encoding)


def response_bytes(message: BudgetMessage) -> bytes:
    return body_bytes(message.response_body, message.response_encoding)


# What the log's pages and API mask (adapters.xml.display): payees' wallets and names, free text. The download keeps
# the message as it travelled.
PERSONAL = PersonalElements(
    accounts=frozenset({"PayeeAcctNo", "PayAcctNo"}),
    names=frozenset({"PayeeAcctName", "PayAcctName"}),
    ids=frozenset({"Message", "PaySummaryName", "Purpose"}),
)


def shown_body(data: bytes, *, max_bytes: int = DISPLAY_MAX_BYTES) -> tuple[str, bool]:
    """(text to show, cut short?): re-indented, personal data masked."""
    return shown_xml(data, max_bytes=max_bytes, personal=PERSONAL)
