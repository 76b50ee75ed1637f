import logging

import pytest

from treasury import identifiers, money
from treasury.identifiers import InvalidIdentifier
from treasury.logmask import MaskPersonalDataFilter, mask_text

CAPITALS = {
    0: "零元整", 100: "壹元整", 1000: "壹拾元整", 1050: "壹拾元伍角整", 10005: "壹佰元零伍分",
    100500: "壹仟零伍元整", 123456: "壹仟贰佰叁拾肆元伍角陆分", 10000000: "壹拾万元整",
    10000000000: "壹亿元整", 1234567: "壹万贰仟叁佰肆拾伍元陆角柒分",
    # Zeros between groups and inside them.
    100010000: "壹佰万零壹佰元整", 100000100: "壹佰万零壹元整", 5: "伍分", 50: "伍角整", 101: "壹元零壹分",
}


@pytest.mark.parametrize("fen,text", CAPITALS.items())
def test_capitals(fen, text):
    assert money.fen_to_capitals(fen) == text


@pytest.mark.parametrize("text,fen", [
    ("1,234.56", 123456), ("１２３４.５", 123450), (" 7 ", 700), ("0.01", 1), ("¥12.3", 1230),
])
def test_yuan_to_fen(text, fen):
    assert money.yuan_to_fen(text) == fen


@pytest.mark.parametrize("text", ["1.234", "-5", "abc", "", "1e3", "1.2.3"])
def test_yuan_to_fen_refuses(text):
    with pytest.raises(money.InvalidAmount):
        money.yuan_to_fen(text)


@pytest.mark.parametrize("text", ["9" * 27, "9" * 40 + ".00", "-" + "9" * 30])
def test_yuan_to_fen_refuses_more_digits_than_decimal_holds(text):
    """Past 26 digits quantize() raised decimal.InvalidOperation, which no caller expects (a union member file, the
    declaration form and API catch InvalidAmount): a server error."""
    with pytest.raises(money.InvalidAmount, match="too large"):
        money.yuan_to_fen(text, allow_negative=True)


def test_format():
    assert money.format_yuan(123456789) == "¥1,234,567.89"
    assert money.fen_to_yuan_str(-5) == "-0.05"


@pytest.mark.parametrize("number", [
    "11010519491231002X", "440524188001015368", "53010219200508011X", "81000019980902013X",
    "932682198501010017", "11010519491231002x",
])
def test_valid_resident_ids(number):
    assert identifiers.validate_resident_id(number).number == number.upper()


def test_unassigned_region_is_a_warning_not_an_error():
    base = "37010219600101001"
    from stdnum.cn import ric

    number = base + ric.calc_check_digit(base + "0")
    result = identifiers.validate_resident_id(number)
    assert result.warnings


def test_fifteen_digit_id_converts():
    assert identifiers.validate_resident_id("110105491231002").number == "11010519491231002X"


@pytest.mark.parametrize("number,code", [
    ("110105194912310021", "id_checksum"), ("1101051949123100", "id_format"), ("110105194913310028", "id_birth_date"),
])
def test_bad_resident_ids(number, code):
    if code == "id_birth_date":
        from stdnum.cn import ric

        number = number[:17] + ric.calc_check_digit(number)
    with pytest.raises(InvalidIdentifier) as caught:
        identifiers.validate_resident_id(number)
    assert caught.value.code == code


@pytest.mark.parametrize("code", ["91350100M000100Y43", "91310110666007217T", "91310115591693856A", "91350100M0001TGQXM"])
def test_valid_uscc_and_whitelist(code):
    assert identifiers.validate_uscc(code) == code


def test_bad_uscc():
    with pytest.raises(InvalidIdentifier) as caught:
        identifiers.validate_uscc("91350100M000100Y44")
    assert caught.value.code == "uscc_checksum"
    with pytest.raises(InvalidIdentifier):
        identifiers.validate_uscc("9135010OM000100Y43")


def test_wallet_id():
    assert identifiers.validate_wallet_id(" 0010000000000011 ") == "0010000000000011"
    with pytest.raises(InvalidIdentifier):
        identifiers.validate_wallet_id("001000000000001")


def test_masks():
    assert identifiers.mask_resident_id("11010519491231002X") == "110***********002X"
    assert identifiers.mask_wallet_id("0010000000000011") == "0010********0011"
    assert identifiers.mask_name("张三") == "张*" and identifiers.mask_name("欧阳娜娜") == "欧**娜"


def test_log_lines_are_masked():
    text = mask_text("paid 11010519491231002X from wallet 0010000000000011. mobile 13812345678; took 1.0093123456789012s")
    assert "11010519491231002X" not in text and "0010000000000011" not in text and "13812345678" not in text
    assert "1.0093123456789012s" in text  # durations are not wallet ids


def test_filter_masks_arguments():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "payee %s", ("0010000000000011",), None)
    MaskPersonalDataFilter().filter(record)
    assert record.getMessage() == "payee 0010********0011"


@pytest.mark.django_db
def test_parties_are_validated_where_they_enter():
    from treasury.models import Organization
    from treasury.services.parties import register_organization, register_person

    with pytest.raises(InvalidIdentifier):
        register_organization(name="x", org_type=Organization.Type.EMPLOYER, uscc="91350100M000100Y44")
    org = register_organization(name="x", org_type=Organization.Type.EMPLOYER, uscc=" 91350100m000100y43 ")
    assert org.uscc == "91350100M000100Y43"
    assert register_organization(name="x", org_type=Organization.Type.EMPLOYER, uscc="91350100M000100Y43") == org
    with pytest.raises(InvalidIdentifier):
        register_person(name="张三", resident_id="110105194912310021")
    person, warnings = register_person(name=" 张三 ", resident_id="11010519491231002x")
    assert (person.resident_id, person.name, warnings) == ("11010519491231002X", "张三", ())



@pytest.mark.parametrize("check,value", [
    (identifiers.validate_resident_id, "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X"),  # Arabic-Indic digits: \d matched them
    (identifiers.validate_resident_id, "١١٠١٠٥٤٩١٢٣١٠٠٢"),  # the 15-digit form
    (identifiers.validate_wallet_id, "١٠٠١٢٣٤٥٦٧٨٩٠١٢٣"),
    (identifiers.validate_wallet_id, "१००१२३४५६७८९०१२३"),  # Devanagari
])
def test_identifiers_are_ascii_digits_only(check, value):
    with pytest.raises(InvalidIdentifier):
        check(value)
