"""The service's Ed25519 signing key (trace checkpoints, receipts).

Production provisions the key file out of band and points SERVICE_SIGNING_KEY_FILE at it, with
SERVICE_SIGNING_KEY_CREATE off so a missing key is an error, not a silent new identity.
Development creates a key on first use under var/keys (never committed).
"""
from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@lru_cache(maxsize=1)
def service_private_key() -> Ed25519PrivateKey:
    path = settings.SERVICE_SIGNING_KEY_FILE
    if not path.exists():
        if not settings.SERVICE_SIGNING_KEY_CREATE:
            raise ImproperlyConfigured(f"SERVICE_SIGNING_KEY_FILE does not exist: {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # Written once, readable by the service user only; O_EXCL so two processes never race.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
        except FileExistsError:
            pass
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured("SERVICE_SIGNING_KEY_FILE must hold an Ed25519 private key")
    return key


def service_public_key() -> Ed25519PublicKey:
    return service_private_key().public_key()


def key_id(public_key: Ed25519PublicKey | None = None) -> str:
    """A short, stable name for a public key: first 16 hex digits of SHA-256 of its raw bytes."""
    raw = (public_key or service_public_key()).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(data: bytes) -> str:
    """Base64 Ed25519 signature over data with the service key."""
    return base64.b64encode(service_private_key().sign(data)).decode("ascii")


def verify(data: bytes, signature_b64: str, public_key: Ed25519PublicKey | None = None) -> bool:
    try:
        (public_key or service_public_key()).verify(base64.b64decode(signature_b64), data)
        return True
    except (InvalidSignature, ValueError):
        return False


def public_key_pem() -> str:
    return service_public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
