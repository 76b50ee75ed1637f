"""Stored messages as the message log pages and APIs show them: XML re-indented, personal data masked.

Each adapter names the elements of its messages that hold personal data (`PersonalElements`): wallet ids and
account numbers, names (a person's or an organization's: a message does not say which), and elements whose
text may carry an ID number (a taxpayer code is a resident ID for a person). Masking goes by element name, not
by pattern over the whole text, so a voucher or serial number that happens to look like an ID stays readable.
It works on text, so a body shown cut short (too large to re-indent) is masked too. The exact bytes, which the
signatures cover, are a download for the roles that verify them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from adapters.xml.hardened import XmlRefused, parse
from treasury.identifiers import mask_name, mask_wallet_id
from treasury.logmask import mask_text

# An element's start tag (any namespace prefix, any attributes) and the text right after it, up to the next tag
# or the end of a body cut short.
_ELEMENT_TEXT = re.compile(r"(<(?:[\w.-]+:)?(?P<tag>[A-Za-z_][\w.-]*)(?:\s[^<>]*)?>)(?P<text>[^<]*)")


@dataclass(frozen=True)
class PersonalElements:
    accounts: frozenset[str] = frozenset()  # wallet ids, account numbers: kept at their first and last 4
    names: frozenset[str] = frozenset()  # names: the first and last character
    ids: frozenset[str] = frozenset()  # codes or free text that may hold an ID or mobile number (logmask)


# Markup that may stand between a start tag and its text in a body shown as text (refused, or cut short): a CDATA
# section's content is text like any other, and a comment or processing instruction hid the text after it from
# `_ELEMENT_TEXT`, so a name or wallet behind one was shown whole. Both to the end of a body cut short inside one.
_CDATA = re.compile(r"<!\[CDATA\[(.*?)(?:\]\]>|$)", re.DOTALL)
_COMMENT_OR_PI = re.compile(r"<!--.*?(?:-->|$)|<\?.*?(?:\?>|$)", re.DOTALL)


def _cdata_as_text(match: re.Match) -> str:
    return match[1].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mask_personal(text: str, personal: PersonalElements) -> str:
    """`text` (XML, whole or cut short) with the personal elements' text masked; comments and processing
    instructions are left out and CDATA sections shown as the text they hold, so that none hides a value."""
    if "<!" in text or "<?" in text:
        text = _CDATA.sub(_cdata_as_text, text)
        declaration = ""
        if text.startswith("<?xml"):  # the XML declaration stays: it says how the body is encoded
            declaration, _, text = text.partition("?>")
            declaration += "?>"
        text = declaration + _COMMENT_OR_PI.sub("", text)

    def masked(match: re.Match) -> str:
        tag, value = match["tag"], match["text"]
        if not value.strip():
            return match[0]
        if tag in personal.accounts:
            value = mask_wallet_id(value.strip())
        elif tag in personal.names:
            value = mask_name(value.strip())
        elif tag in personal.ids:
            value = mask_text(value)
        else:
            return match[0]
        return match[1] + value

    return _ELEMENT_TEXT.sub(masked, text)


def shown_xml(data: bytes, *, max_bytes: int, personal: PersonalElements) -> tuple[str, bool]:
    """(text to show, cut short?). XML re-indented (decoded per its declaration, GBK or UTF-8); anything else
    (an HTML error page, a cut-off reply) as text; above `max_bytes` the first `max_bytes`, unindented. Masked
    in every case."""
    if not data:
        return "", False
    if len(data) > max_bytes:
        return mask_personal(data[:max_bytes].decode("utf-8", errors="replace"), personal), True
    try:
        root = parse(data, max_bytes=max_bytes)  # hardened: a stored hostile body stays inert
    except XmlRefused:
        return mask_personal(data.decode("utf-8", errors="replace"), personal), False
    return mask_personal(etree.tostring(root, pretty_print=True, encoding="unicode"), personal), False
