"""QR codes for receipts: segno's encoder, with module placement cached per symbol version.

Every receipt carries a different URL, so every receipt needs a fresh QR symbol. segno spends most
of a symbol's time walking the matrix: placing codeword bits module by module and applying the
data mask to every module. Both walks depend only on (version, error level, mask), not on the data:

    module(i, j) = template(i, j) XOR bit_k    for the k-th data module position (i, j)

where the template is the symbol with all data bits zero (function patterns, format and version
information, and the mask pattern over the data region). So the positions and the template are
computed once per (version, error level, mask) with segno's own functions, and a symbol costs only
segno's data encoding, a Reed-Solomon step (the remainder kept in one integer, a table of
generator multiples per block size) and one XOR per set data bit.

The result is identical to `segno.make_qr(data, error=..., mask=..., boost_error=False).matrix`;
tests/receipts/test_qr.py checks it over many inputs and versions. The segno functions used here
live in `segno.encoder`, which is not segno's public API: segno is pinned, and the equality test
catches any change when it is upgraded. `matrix_for` falls back to `segno.make_qr` if they move.
"""
from __future__ import annotations

from functools import lru_cache

import segno
from segno import consts
from segno import encoder as _enc

ERROR_LEVELS = {"l": consts.ERROR_LEVEL_L, "m": consts.ERROR_LEVEL_M, "q": consts.ERROR_LEVEL_Q, "h": consts.ERROR_LEVEL_H}
_POSITION_BASE = 1 << 20  # placeholder values that no function-pattern module can have


@lru_cache(maxsize=64)
def _layout(version: int, error: int, mask: int) -> tuple[tuple[bytes, ...], tuple[tuple[int, int], ...]]:
    """(template rows, data module positions in placement order) for one symbol shape."""
    width = _enc.calc_matrix_size(version)

    def function_patterns():
        matrix = _enc.make_matrix(width, width)
        _enc.add_finder_patterns(matrix, width, width)
        _enc.add_alignment_patterns(matrix, width, width)
        return matrix

    # Where each data bit goes: let segno place numbered placeholders and read them back.
    grid = [list(row) for row in function_patterns()]
    count = sum(row.count(0x2) for row in grid)
    _enc.add_codewords(grid, range(_POSITION_BASE, _POSITION_BASE + count), version)
    positions: list[tuple[int, int] | None] = [None] * count
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if value >= _POSITION_BASE:
                positions[value - _POSITION_BASE] = (i, j)

    # The symbol with every data bit zero.
    template = function_patterns()
    _enc.add_codewords(template, bytearray(count), version)
    _, template = _enc.find_and_apply_best_mask(template, width, width, mask)
    _enc.add_format_info(template, version, error, mask)
    _enc.add_version_info(template, version)
    return tuple(bytes(row) for row in template), tuple(positions)


_BITS_TO_ASCII = bytes.maketrans(b"\x00\x01", b"01")
# For each byte value, the offsets (0 = most significant) of its set bits.
_SET_BITS = tuple(tuple(b for b in range(8) if value & (0x80 >> b)) for value in range(256))


def _data_codewords(data: str, error: int) -> tuple[int, bytes]:
    """The symbol version and its data codewords (mode, count, data, terminator, padding), as segno writes them."""
    segments = _enc.prepare_data(data, None, None)
    version = _enc.find_version(segments, error, eci=False, micro=False)
    buff = _enc.Buffer()
    ver_range = _enc.version_range(version)
    for segment in segments:
        _enc.write_segment(buff, segment, None, ver_range, False)
    capacity = consts.SYMBOL_CAPACITY[version][error]
    _enc.write_terminator(buff, capacity, None, len(buff))
    _enc.write_padding_bits(buff, version, len(buff))
    _enc.write_pad_codewords(buff, version, capacity, len(buff))
    bits = bytes(buff.getbits())
    return version, int(bits.translate(_BITS_TO_ASCII), 2).to_bytes(len(bits) // 8, "big")


@lru_cache(maxsize=None)
def _rs_products(num_error_words: int) -> tuple[int, ...]:
    """For each factor c, c x the generator polynomial (without its leading term) as one big integer."""
    gen, log, exp = consts.GEN_POLY[num_error_words], consts.GALIOS_LOG, consts.GALIOS_EXP
    products = [0]
    for coef in range(1, 256):
        products.append(int.from_bytes(bytes(exp[log[coef] + g] for g in gen), "big"))
    return tuple(products)


def _error_words(block: bytes, count: int) -> bytes:
    """Reed-Solomon remainder of block x^count by the generator: the same result as segno's make_blocks,
    with the remainder held in one integer so each data byte costs a few integer operations."""
    products = _rs_products(count)
    shift, mask, remainder = 8 * (count - 1), (1 << 8 * count) - 1, 0
    for byte in block:
        factor = byte ^ (remainder >> shift)
        remainder = (remainder << 8) & mask
        if factor:
            remainder ^= products[factor]
    return remainder.to_bytes(count, "big")


def _final_codewords(version: int, error: int, data: bytes) -> bytes:
    """Data and error correction codewords, split into blocks and interleaved (ISO/IEC 18004 7.6)."""
    data_blocks, error_blocks, start = [], [], 0
    for ec in consts.ECC[version][error]:
        for _ in range(ec.num_blocks):
            block = data[start : start + ec.num_data]
            start += ec.num_data
            data_blocks.append(block)
            error_blocks.append(_error_words(block, ec.num_total - ec.num_data))
    out = bytearray()
    for blocks in (data_blocks, error_blocks):
        for index in range(max(len(b) for b in blocks)):
            out.extend(b[index] for b in blocks if index < len(b))
    return bytes(out)


def _fast_matrix(data: str, error: int, mask: int) -> tuple[bytearray, ...]:
    version, data_words = _data_codewords(data, error)
    codewords = _final_codewords(version, error, data_words)
    template, positions = _layout(version, error, mask)
    if len(codewords) * 8 > len(positions):
        raise ValueError("codewords do not fit the symbol layout")
    matrix = tuple(bytearray(row) for row in template)
    for index, byte in enumerate(codewords):
        base = index * 8
        for offset in _SET_BITS[byte]:
            i, j = positions[base + offset]
            matrix[i][j] ^= 1
    return matrix


def matrix_for(data: str, *, error: str = "m", mask: int = 2) -> tuple[bytearray, ...]:
    """The QR matrix (rows of 0/1, no quiet zone) for data, with a fixed mask pattern."""
    level = ERROR_LEVELS[error]
    try:
        return _fast_matrix(data, level, mask)
    except (AttributeError, TypeError, ValueError):
        # segno's internals changed: stay correct, if slower.
        return segno.make_qr(data, error=error, mask=mask, boost_error=False).matrix
