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
