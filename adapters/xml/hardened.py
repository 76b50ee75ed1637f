"""Parse untrusted XML safely and validate it against the project's XSD before anything reads it.

What every inbound document goes through, in this order (each step refuses with `XmlRefused`):
1. size: more than `max_bytes` is refused before a single byte is parsed (`oversized`);
2. DOCTYPE: a document with a document type declaration (so with entity declarations, an internal
   subset or an external DTD) is refused before parsing (`doctype_forbidden`); our protocols never
   need one, and refusing it outright closes XXE, billion laughs and DTD fetches for good;
3. parsing with lxml, entities not resolved, no DTD loaded, no network, no huge trees (`malformed`);
   the parsed tree is checked for a DOCTYPE again, in case the byte scan was fooled (a comment in
   the prolog, an unusual encoding);
4. XSD validation (`schema_invalid`), with the first error's line and reason.

defusedxml is not used: its lxml module is deprecated, and lxml's own parser options plus the
DOCTYPE refusal above cover what it would add.

Thread safety: lxml parsers and compiled schemas keep per-object error logs, so each thread gets
its own parser and its own compiled copy of each schema (compiled once per thread, then cached).
"""
from __future__ import annotations

import re
import threading
from os import PathLike
from pathlib import Path

from lxml import etree

OVERSIZED = "oversized"
DOCTYPE_FORBIDDEN = "doctype_forbidden"
MALFORMED = "malformed"
SCHEMA_INVALID = "schema_invalid"

# The first '<' that opens an element (not '<?' or '<!'): a DOCTYPE can only come before it.
_FIRST_ELEMENT = re.compile(rb"<(?![?!])")
_DOCTYPE = re.compile(rb"<!\s*DOCTYPE|<!\s*ENTITY", re.IGNORECASE)
_UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


class XmlRefused(ValueError):
    """An inbound document refused as a whole; nothing in it was read.

    `code` is one of oversized, doctype_forbidden, malformed, schema_invalid; `line` the line of the
    problem when known; `reason` the reason alone; `str(exc)` both, readable by a person.
    """

    def __init__(self, code: str, reason: str, *, line: int | None = None):
        self.code = code
        self.reason = reason
        self.line = line
        super().__init__(f"{reason} (line {line})" if line else reason)


_local = threading.local()


def _parser() -> etree.XMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,  # an entity reference stays a reference, never expanded
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,  # would need the DTD
            huge_tree=False,  # keep libxml2's depth and text-size limits
            collect_ids=False,
            # Comments and processing instructions carry nothing a reader may use, and left in they stand
            # among the elements that readers take by position.
            remove_comments=True,
            remove_pis=True,
        )
        _local.parser = parser
    return parser


def _prolog_for_scan(data: bytes) -> bytes:
    """The bytes in which a DOCTYPE could stand, transcoded to UTF-8 if the document is UTF-16/32."""
    head = data[:1 << 16]
    if head.startswith(_UTF16_32_BOMS) or b"\x00" in head[:4]:
        for codec in ("utf-32", "utf-16"):
            try:
                head = head[:len(head) - len(head) % 4].decode(codec, errors="ignore").encode()
                break
            except UnicodeError:
                continue
    match = _FIRST_ELEMENT.search(head)
    return head[:match.start()] if match else head


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def parse(data: bytes, *, max_bytes: int) -> etree._Element:
    """Untrusted bytes -> the root element, or XmlRefused (oversized, doctype_forbidden, malformed).

    Raises TypeError for anything but bytes (a str would hide its encoding).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"XML must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise XmlRefused(OVERSIZED, f"document of {len(data):,} bytes exceeds the limit of {max_bytes:,} bytes")
    if not data.strip():
        raise XmlRefused(MALFORMED, "empty document")
    found = _DOCTYPE.search(_prolog_for_scan(data))
    if found:
        raise XmlRefused(DOCTYPE_FORBIDDEN, "document type declarations (DOCTYPE, ENTITY) are not accepted",
                         line=_line_of(data, found.start()))
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        message = (exc.msg or "not well-formed XML").strip()
        raise XmlRefused(MALFORMED, f"not well-formed XML: {message}", line=exc.lineno or None) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise XmlRefused(DOCTYPE_FORBIDDEN, "document type declarations (DOCTYPE, ENTITY) are not accepted", line=1)
    return root


def load_schema(path: str | PathLike) -> etree.XMLSchema:
    """The compiled XSD at `path`, compiled once per thread and cached (schemas are our own files;
    imports and includes resolve next to them, never over the network)."""
    key = str(Path(path).resolve())
    cache = getattr(_local, "schemas", None)
    if cache is None:
        cache = _local.schemas = {}
    schema = cache.get(key)
    if schema is None:
        schema = cache[key] = etree.XMLSchema(etree.parse(key, parser=_parser()))
    return schema


def validate(element: etree._Element, *, schema: etree.XMLSchema | str | PathLike) -> etree._Element:
    """Validate an element (a whole document or one subtree, e.g. a SOAP body's payload).

    Raises XmlRefused(schema_invalid) naming the first error's line and reason.
    """
    compiled = schema if isinstance(schema, etree.XMLSchema) else load_schema(schema)
    if not compiled.validate(element):
        error = compiled.error_log.last_error if len(compiled.error_log) == 1 else compiled.error_log[0]
        reason = error.message if error is not None else "does not match the schema"
        raise XmlRefused(SCHEMA_INVALID, f"not valid against the schema: {reason}",
                         line=(error.line or None) if error is not None else None)
    return element


def parse_and_validate(data: bytes, *, schema: etree.XMLSchema | str | PathLike, max_bytes: int) -> etree._Element:
    """Untrusted bytes -> a root element valid against `schema`, or XmlRefused with its `code`:
    oversized, doctype_forbidden, malformed, schema_invalid. Nothing of a refused document is read."""
    return validate(parse(data, max_bytes=max_bytes), schema=schema)
