"""Message log bodies as pages show them: re-indented, personal elements masked by name, cut-short bodies too."""
from adapters.xml.display import PersonalElements, mask_personal, shown_xml

PERSONAL = PersonalElements(accounts=frozenset({"PayAcct"}), names=frozenset({"PayeeName"}),
                            ids=frozenset({"TaxPayCode", "Remark"}))


def test_personal_elements_are_masked_by_name_and_others_left_alone():
    text = ('<b:Detail xmlns:b="urn:x"><b:PayAcct>0010000000000077</b:PayAcct><PayeeName attr="1">张三丰</PayeeName>'
            "<TaxPayCode>11010519491231002X</TaxPayCode><TaxPayCode>91310110666007217T</TaxPayCode>"
            "<TaxVouNo>110105194912310021</TaxVouNo><Remark>mobile 13912345678</Remark><PayeeName/></b:Detail>")
    assert mask_personal(text, PERSONAL) == (
        '<b:Detail xmlns:b="urn:x"><b:PayAcct>0010********0077</b:PayAcct><PayeeName attr="1">张*丰</PayeeName>'
        "<TaxPayCode>110***********002X</TaxPayCode><TaxPayCode>91310110666007217T</TaxPayCode>"  # a company's code stays
        "<TaxVouNo>110105194912310021</TaxVouNo><Remark>mobile 139****5678</Remark><PayeeName/></b:Detail>")


def test_a_body_cut_short_is_masked_up_to_its_last_character():
    data = ("<Items>" + "<PayAcct>0010000000000077</PayAcct>" * 10).encode()
    text, cut = shown_xml(data, max_bytes=len(data) - 10, personal=PERSONAL)
    assert cut and "0010000000000077" not in text and "0010000000" not in text.rsplit("<PayAcct>", 1)[1]


def test_a_whole_body_is_reindented_and_masked_and_text_that_is_not_xml_is_masked_too():
    text, cut = shown_xml(b"<a><PayeeName>\xe5\xbc\xa0\xe4\xb8\x89\xe4\xb8\xb0</PayeeName></a>", max_bytes=1000,
                          personal=PERSONAL)
    assert (text, cut) == ("<a>\n  <PayeeName>张*丰</PayeeName>\n</a>\n", False)
    text, _ = shown_xml(b"<html><PayeeName>\xe5\xbc\xa0\xe4\xb8\x89\xe4\xb8\xb0</PayeeName>", max_bytes=1000,
                        personal=PERSONAL)
    assert "张三丰" not in text and "张*丰" in text


def test_a_refused_body_hides_no_value_behind_cdata_or_a_comment():
    """A body the hardened parser refused (or one cut short) is shown as text: a name in a CDATA section, or after a
    comment or processing instruction, was not the text right after its start tag and was shown whole."""
    data = ('<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE x><CFX><PayeeName><![CDATA[张三丰]]></PayeeName>'
            "<PayAcct><!-- x -->0010000000000077</PayAcct><TaxPayCode><?pi?>11010519491231002X</TaxPayCode>"
            "<PayeeName><![CDATA[李<四>丰").encode()
    for max_bytes in (10_000, len(data) - 1):
        text, _ = shown_xml(data, max_bytes=max_bytes, personal=PERSONAL)
        for whole in ("张三丰", "0010000000000077", "11010519491231002X", "李<四>"):
            assert whole not in text, (whole, text)
    assert "张*丰" in text and text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
