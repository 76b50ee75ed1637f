"""Identifiers: validated where they enter (python-stdnum), masked where they are shown.

- Resident identity number (GB 11643): stdnum checks format, checksum and birth date. stdnum also
  refuses region codes it does not know for the birth year; real IDs carry the code of the place and
  time of issue, and HK/Macau/Taiwan residence permits (81/82/83) and foreigners' permanent residence
  IDs (9...) have unusual regions, so an unknown region is a warning, never an error.
- Unified social credit code (GB 32100): stdnum's checksum, plus a configured whitelist of real
  early pilot codes that fail it.
- e-CNY wallet id: 16 digits; the first 3 name the operator (this project's convention).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric, uscc

# [0-9], not \d: \d also matches other scripts' digits (Arabic-Indic "١٠٠١..."), which int() reads but no
# operator, message schema or check-digit table knows.
WALLET_ID_RE = re.compile(r"^[0-9]{16}$")


class InvalidIdentifier(ValueError):
    """A clerk-readable reason why an identifier is wrong; `code` is for API clients."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ResidentId:
    number: str
    warnings: tuple[str, ...] = ()


def normalize_resident_id(value: str) -> str:
    return str(value).strip().replace(" ", "").upper()


def validate_resident_id(value: str) -> ResidentId:
    """Return the normalized 18-character number (with warnings) or raise InvalidIdentifier.

    A 15-digit old-style number is converted (19 inserted after the region, check recomputed).
    """
    number = normalize_resident_id(value)
    if re.fullmatch(r"[0-9]{15}", number):
        number = number[:6] + "19" + number[6:] + "0"
        number = number[:17] + ric.calc_check_digit(number)  # takes all 18, ignores the last
    if not re.fullmatch(r"[0-9]{17}[0-9X]", number):
        raise InvalidIdentifier("身份证号应为18位，最后一位可为X (must be 18 characters, the last may be X)", "id_format")
    if ric.calc_check_digit(number) != number[-1]:
        raise InvalidIdentifier("身份证号校验位错误 (resident ID check digit is wrong)", "id_checksum")
    try:
        ric.get_birth_date(number)
    except stdnum_errors.ValidationError:
        raise InvalidIdentifier("身份证号出生日期无效 (birth date in resident ID is not a date)", "id_birth_date")
    warnings = []
    try:
        ric.validate(number)
    except stdnum_errors.InvalidComponent:
        warnings.append("地区代码未知或当年尚未设立 (region code unknown or not assigned in the birth year)")
    except stdnum_errors.ValidationError:
        pass  # checksum and birth date already checked above; anything else stdnum says is a region note
    return ResidentId(number=number, warnings=tuple(warnings))


def normalize_uscc(value: str) -> str:
    return str(value).strip().replace(" ", "").upper()


def validate_uscc(value: str) -> str:
    code = normalize_uscc(value)
    if code in settings.USCC_CHECKSUM_WHITELIST:
        return code
    try:
        return uscc.validate(code)
    except stdnum_errors.InvalidChecksum:
        raise InvalidIdentifier("统一社会信用代码校验位错误 (unified social credit code check character is wrong)", "uscc_checksum")
    except stdnum_errors.ValidationError:
        raise InvalidIdentifier(
            "统一社会信用代码应为18位数字或大写字母（不含I、O、Z、S、V） (must be 18 characters of 0-9 and A-Z without I, O, Z, S, V)",
            "uscc_format",
        )


def validate_wallet_id(value: str) -> str:
    wallet_id = str(value).strip().replace(" ", "")
    if not WALLET_ID_RE.fullmatch(wallet_id):
        raise InvalidIdentifier("钱包编号应为16位数字 (e-CNY wallet id must be 16 digits)", "wallet_id_format")
    return wallet_id


def _as_validation_error(check, value):
    try:
        check(value)
    except InvalidIdentifier as exc:
        raise ValidationError(str(exc), code=exc.code)


# Model-field validators (module-level functions so migrations can name them).
def validate_resident_id_field(value):
    _as_validation_error(validate_resident_id, value)


def validate_uscc_field(value):
    _as_validation_error(validate_uscc, value)


def validate_wallet_id_field(value):
    _as_validation_error(validate_wallet_id, value)


# Masking: what a list, a log line or a receipt shows of personal data.
def mask_resident_id(number: str) -> str:
    number = str(number or "")
    return number[:3] + "*" * (len(number) - 7) + number[-4:] if len(number) > 7 else "*" * len(number)


def mask_wallet_id(wallet_id: str) -> str:
    wallet_id = str(wallet_id or "")
    return wallet_id[:4] + "*" * (len(wallet_id) - 8) + wallet_id[-4:] if len(wallet_id) > 8 else wallet_id


def mask_name(name: str) -> str:
    name = str(name or "")
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]
