"""Merkle roots over stream heads, computed in one pass with O(log n) memory.

The tree is the one of RFC 6962 (Certificate Transparency): for n leaves, the left subtree holds
the largest power of two below n. Leaves are fed in stream-key order (Unicode code point order,
which is the byte order of UTF-8 and of PostgreSQL's "C" collation).

    leaf = sha256("<stream key>|<head seq>|<head hash>")
    node = sha256(0x01 || left || right)

The 0x01 prefix keeps an inner node from ever being read as a leaf (a leaf's text starts with a
printable stream key). The root of no leaves is sha256 of nothing.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

_NODE = b"\x01"


def leaf_hash(*, stream_key: str, seq: int, head_hash: str) -> bytes:
    return hashlib.sha256(f"{stream_key}|{seq}|{head_hash}".encode("utf-8")).digest()


class MerkleBuilder:
    """Add leaves in order, then read `root()`. Keeps one hash per set bit of the leaf count."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (leaves under this subtree, its hash)
        self.count = 0

    def add(self, leaf: bytes) -> None:
        size, node = 1, leaf
        while self._stack and self._stack[-1][0] == size:
            _, left = self._stack.pop()
            node = hashlib.sha256(_NODE + left + node).digest()
            size *= 2
        self._stack.append((size, node))
        self.count += 1

    def add_head(self, *, stream_key: str, seq: int, head_hash: str) -> None:
        self.add(leaf_hash(stream_key=stream_key, seq=seq, head_hash=head_hash))

    def root(self) -> str:
        if not self._stack:
            return hashlib.sha256(b"").hexdigest()
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = hashlib.sha256(_NODE + left + node).digest()
        return node.hex()


def merkle_root(leaves: Iterable[bytes]) -> str:
    builder = MerkleBuilder()
    for leaf in leaves:
        builder.add(leaf)
    return builder.root()
