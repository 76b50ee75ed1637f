"""Signatures of TIPS messages: Ed25519 over the exact bytes of the CFX document.

The document travels base64 in the SOAP body (schemas/tips_soap.xsd), so the bytes the receiver
verifies are the bytes the sender signed: no canonicalisation step can disagree, GBK or UTF-8 alike.
The signature and the signer's key id travel next to it (`Signature`, `KeyId`).

- The service signs with its own key (`treasury.keys`).
- It verifies the tax system's messages with the public key in `settings.TIPS_PEER_PUBLIC_KEY_FILE`
  (PEM, SubjectPublicKeyInfo). Production provisions that file out of band; in development the
  sandbox tax system writes its public key there when it creates its key pair (`ensure_key_pair`).
"""
from __future__ import annotations

import base64
import os
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def sign_with(private_key: Ed25519PrivateKey, data: bytes) -> str:
    """Base64 Ed25519 signature over `data`."""
    return base64.b64encode(private_key.sign(data)).decode("ascii")


def verify_with(public_key: Ed25519PublicKey, data: bytes, signature_b64: str) -> bool:
    """Whether `signature_b64` is a valid signature of `data` by `public_key` (False for a missing or
    garbled signature)."""
    if not signature_b64:
        return False
    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), data)
        return True
    except (InvalidSignature, ValueError):
        return False


def key_id_of(public_key: Ed25519PublicKey) -> str:
    from treasury.keys import key_id

    return key_id(public_key)


def service_sign(data: bytes) -> tuple[str, str]:
    """(signature, key id) of `data` with the service's key."""
    from treasury import keys

    return keys.sign(data), keys.key_id()


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} does not hold an Ed25519 public key")
    return key


@lru_cache(maxsize=4)
def _peer_public_key(path: str) -> Ed25519PublicKey:
    return load_public_key(path)


def peer_public_key() -> Ed25519PublicKey:
    """The tax system's public key (settings.TIPS_PEER_PUBLIC_KEY_FILE). Raises ImproperlyConfigured when
    the file is missing or holds something else."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    path = str(settings.TIPS_PEER_PUBLIC_KEY_FILE)
    try:
        return _peer_public_key(path)
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"TIPS_PEER_PUBLIC_KEY_FILE {path}: {exc}") from None


peer_public_key.cache_clear = _peer_public_key.cache_clear  # tests change the setting


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def ensure_key_pair(private_path: str | os.PathLike, public_path: str | os.PathLike | None = None) -> Ed25519PrivateKey:
    """The Ed25519 private key at `private_path`, created (mode 0600, like treasury.keys) when missing; its public
    key is (re)written to `public_path` when given. For the sandbox tax system and tests, never the service."""
    private_path = Path(private_path)
    if not private_path.exists():
        private_path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption())
        try:
            fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
        except FileExistsError:
            pass
    key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{private_path} does not hold an Ed25519 private key")
    if public_path is not None:
        public_path = Path(public_path)
        public_path.parent.mkdir(parents=True, exist_ok=True)
        public_path.write_bytes(public_key_pem(key.public_key()))
    return key
