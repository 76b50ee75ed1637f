"""WSGI plumbing of the sandboxes: the api-key check, replies of any content type, and for the JSON
endpoints (every e-CNY one, the budget system's admin ones) routing, bodies and errors.

Plain WSGI, no framework. A JSON error is `{"error": {"code": ..., "message": ...}}`.
"""
from __future__ import annotations

import hmac
import re
from typing import Callable

import orjson

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
STATUS_TEXT = {200: "200 OK", 201: "201 Created", 400: "400 Bad Request", 401: "401 Unauthorized",
               404: "404 Not Found", 405: "405 Method Not Allowed", 409: "409 Conflict",
               413: "413 Payload Too Large", 500: "500 Internal Server Error", 502: "502 Bad Gateway",
               503: "503 Service Unavailable"}

Routes = list[tuple[str, re.Pattern, Callable]]  # (method, path pattern, handler)


class BadRequest(Exception):
    """A request refused as a whole with a JSON error; `http_status` says how."""

    def __init__(self, message: str, *, code: str = "BAD_REQUEST", http_status: int = 400):
        super().__init__(message)
        self.code = code
        self.http_status = http_status


def authorized(environ, api_key: bytes) -> bool:
    """Whether the request carries `Authorization: Bearer <api_key>` (compared in constant time)."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    return header.startswith("Bearer ") and hmac.compare_digest(header[len("Bearer "):].encode(), api_key)


def find_route(routes: Routes, method: str, path: str) -> tuple[Callable, dict]:
    """The handler of the first route matching method and path, and the path's named groups.

    Raises BadRequest: 405 METHOD_NOT_ALLOWED when only the path matches, 404 NOT_FOUND otherwise.
    """
    allowed = False
    for route_method, pattern, handler in routes:
        match = pattern.fullmatch(path)
        if match:
            allowed = True
            if route_method == method:
                return handler, match.groupdict()
    raise BadRequest(f"{method} {path}", code="METHOD_NOT_ALLOWED" if allowed else "NOT_FOUND",
                     http_status=405 if allowed else 404)


def read_json_body(environ, *, max_bytes: int, too_large_status: int) -> dict:
    """The request body as a JSON object ({} when empty). Raises BadRequest; a body over `max_bytes`
    is refused unread with `too_large_status` and code TOO_LARGE."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequest("bad Content-Length")
    if length > max_bytes:
        raise BadRequest("request body too large", code="TOO_LARGE", http_status=too_large_status)
    raw = environ["wsgi.input"].read(length) if length else b""
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)  # several times faster than json on a batch of thousands of items
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("body is not JSON")
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def reply(start_response, status: int, data: bytes, content_type: str) -> list[bytes]:
    start_response(STATUS_TEXT.get(status, f"{status} Status"),
                   [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]


def json_reply(start_response, status: int, payload) -> list[bytes]:
    data = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
    return reply(start_response, status, data, JSON_CONTENT_TYPE)


def json_error(start_response, status: int, code: str, message: str) -> list[bytes]:
    return json_reply(start_response, status, {"error": {"code": code, "message": message}})
