"""A logging filter that masks personal data before any handler writes it.

Resident ID numbers (18 characters), e-CNY wallet ids (16 digits) and mobile numbers are masked
wherever they appear in a log message or its arguments. Names cannot be found by pattern: code
logs ids, never names.
"""
import logging
import re

from treasury.identifiers import mask_resident_id, mask_wallet_id

_RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z.])\d{17}[\dXx](?![0-9A-Za-z])(?!\.\d)")
_WALLET_ID = re.compile(r"(?<![\d.])\d{16}(?!\.?\d)")
_MOBILE = re.compile(r"(?<![\d.])1[3-9]\d{9}(?!\.?\d)")


def mask_text(text: str) -> str:
    text = _RESIDENT_ID.sub(lambda m: mask_resident_id(m.group(0)), text)
    text = _WALLET_ID.sub(lambda m: mask_wallet_id(m.group(0)), text)
    return _MOBILE.sub(lambda m: m.group(0)[:3] + "****" + m.group(0)[-4:], text)


class MaskPersonalDataFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string stays loud in the handler, unmasked args dropped
            message = str(record.msg)
        record.msg = mask_text(message)
        record.args = ()
        return True
