"""Hardened XML for every document that crosses the service's boundary (budget system, TIPS, ...).

    from adapters.xml import XmlRefused, parse_and_validate, load_schema

    root = parse_and_validate(data, schema=BUDGET_XSD, max_bytes=settings.BUDGET_MESSAGE_MAX_BYTES)

See `adapters.xml.hardened` for what is refused and why.
"""
from adapters.xml.hardened import (
    DOCTYPE_FORBIDDEN,
    MALFORMED,
    OVERSIZED,
    SCHEMA_INVALID,
    XmlRefused,
    load_schema,
    parse,
    parse_and_validate,
    validate,
)

__all__ = ["DOCTYPE_FORBIDDEN", "MALFORMED", "OVERSIZED", "SCHEMA_INVALID", "XmlRefused", "load_schema", "parse",
           "parse_and_validate", "validate"]
