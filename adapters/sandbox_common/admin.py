"""The client side of a sandbox's JSON admin endpoints: the HTTP call and the error it raises.

Each sandbox's admin client subclasses `JsonAdminClient` with its own methods and error class.
"""
from __future__ import annotations

import requests


class AdminClientError(Exception):
    """The admin endpoint refused the call: its `code` and message, and the HTTP status."""

    def __init__(self, message: str, *, code: str, http_status: int):
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class JsonAdminClient:
    error: type[AdminClientError] = AdminClientError  # what `_call` raises; each sandbox names its own

    def __init__(self, base_url: str, api_key: str, *, timeout_seconds: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout_seconds
        self._session = requests.Session()
        self._session.headers.update({"Authorization": f"Bearer {api_key}"})

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, path: str, payload: dict | None = None) -> dict:
        """The reply's JSON; `self.error` with the reply's error code and message on a status >= 400."""
        response = self._session.request(method, self.base_url + path, json=payload, timeout=self._timeout)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            error = (body.get("error") or {}) if isinstance(body, dict) else {}
            raise self.error(error.get("message") or response.reason, code=error.get("code") or "",
                             http_status=response.status_code)
        return body
