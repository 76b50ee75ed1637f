"""Money: integer fen inside, Decimal only at the edges. The one place that parses and formats amounts."""
from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_YUAN_RE = re.compile(r"^-?\d+(\.\d{1,2})?$")
_FULLWIDTH = str.maketrans("０１２３４５６７８９．－，", "0123456789.-,")


class InvalidAmount(ValueError):
    pass


def yuan_to_fen(text: str | int | Decimal, *, allow_negative: bool = False) -> int:
    """Parse an amount in yuan ("1,234.56", "１２３４.5", Decimal) to integer fen.

    More than two decimals is an error, never rounded: a payroll line must say what it means.
    """
    if isinstance(text, Decimal):
        value = text
    else:
        cleaned = str(text).translate(_FULLWIDTH).replace(",", "").replace(" ", "").replace("¥", "").strip()
        if not _YUAN_RE.fullmatch(cleaned):
            raise InvalidAmount(f"金额格式无效: {text!r} (amount must be yuan with at most two decimals)")
        try:
            value = Decimal(cleaned)
        except InvalidOperation:
            raise InvalidAmount(f"金额格式无效: {text!r}")
    try:
        exact = value == value.quantize(Decimal("0.01"))
    except InvalidOperation:  # more digits than the context's 28 (or not finite): no amount anyone pays
        raise InvalidAmount(f"金额过大或无效: {text!r} (amount is too large or not a number)") from None
    if not exact:
        raise InvalidAmount(f"金额最多两位小数: {text!r} (at most two decimals)")
    if value < 0 and not allow_negative:
        raise InvalidAmount(f"金额不能为负: {text!r} (must not be negative)")
    return int((value * 100).to_integral_value(rounding=ROUND_HALF_UP))


def fen_to_yuan_str(fen: int) -> str:
    """1234567 -> '12345.67' (the form messages carry)."""
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def format_yuan(fen: int) -> str:
    """1234567 -> '¥12,345.67' (the form pages show)."""
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}¥{fen // 100:,}.{fen % 100:02d}"


_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SMALL_UNITS = ["", "拾", "佰", "仟"]
_BIG_UNITS = ["", "万", "亿", "万亿"]


def _four_digits(group: int) -> str:
    """0 < group < 10000 -> capitals with interior zeros folded, e.g. 1005 -> 壹仟零伍."""
    text, zero = "", False
    for position in range(3, -1, -1):
        digit = group // (10**position) % 10
        if digit == 0:
            zero = bool(text)
        else:
            if zero:
                text += "零"
                zero = False
            text += _DIGITS[digit] + _SMALL_UNITS[position]
    return text


def fen_to_capitals(fen: int) -> str:
    """Chinese capital amount (人民币大写): 1234567 -> 壹万贰仟叁佰肆拾伍元陆角柒分."""
    if fen < 0:
        return "负" + fen_to_capitals(-fen)
    yuan, jiao, fen_digit = fen // 100, fen // 10 % 10, fen % 10
    groups = []
    while yuan:
        groups.append(yuan % 10000)
        yuan //= 10000
    text = ""
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            continue
        # A zero is read between groups when a lower group does not fill its thousands place.
        if text and (groups[index + 1] == 0 or group < 1000):
            text += "零"
        text += _four_digits(group) + _BIG_UNITS[index]
    if not text:
        text = "零" if not (jiao or fen_digit) else ""
    if text:
        text += "元"
    if not jiao and not fen_digit:
        return text + "整"
    if jiao:
        text += _DIGITS[jiao] + "角"
    elif text:
        text += "零"
    if fen_digit:
        text += _DIGITS[fen_digit] + "分"
    else:
        text += "整"
    return text
