"""The hardened parser refuses hostile or broken XML with a specific code, before reading anything."""
import threading

import pytest
from lxml import etree

from adapters.xml import (
    DOCTYPE_FORBIDDEN, MALFORMED, OVERSIZED, SCHEMA_INVALID, XmlRefused, load_schema, parse, parse_and_validate,
)
from adapters.xml import hardened

SCHEMA = b"""<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t" xmlns="urn:t"
           elementFormDefault="qualified">
  <xs:element name="Pay"><xs:complexType><xs:sequence>
    <xs:element name="Name" type="xs:string"/>
    <xs:element name="Amt"><xs:simpleType><xs:restriction base="xs:string">
      <xs:pattern value="[0-9]+\\.[0-9]{2}"/></xs:restriction></xs:simpleType></xs:element>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>"""
VALID = b'<?xml version="1.0" encoding="UTF-8"?>\n<Pay xmlns="urn:t"><Name>\xe5\xbc\xa0\xe4\xb8\x89</Name><Amt>12.50</Amt></Pay>'


@pytest.fixture
def schema_path(tmp_path):
    path = tmp_path / "t.xsd"
    path.write_bytes(SCHEMA)
    return path


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-42")
    return path


def refused(data: bytes, *, schema, max_bytes: int = 1_000_000) -> XmlRefused:
    with pytest.raises(XmlRefused) as caught:
        parse_and_validate(data, schema=schema, max_bytes=max_bytes)
    return caught.value


def test_a_valid_document_is_returned_validated(schema_path):
    root = parse_and_validate(VALID, schema=schema_path, max_bytes=1000)
    assert root.findtext("{urn:t}Name") == "张三"


def test_external_entity_to_a_file_is_refused_and_the_file_never_read(schema_path, secret_file):
    xxe = (f'<?xml version="1.0"?>\n<!DOCTYPE Pay [<!ENTITY s SYSTEM "file://{secret_file}">]>\n'
           f'<Pay xmlns="urn:t"><Name>&s;</Name><Amt>1.00</Amt></Pay>').encode()
    error = refused(xxe, schema=schema_path)
    assert error.code == DOCTYPE_FORBIDDEN and error.line == 2
    assert "TOP-SECRET" not in str(error)


def test_billion_laughs_is_refused(schema_path):
    lol = b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    for n in range(1, 10):
        lol += f' <!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">\n'.encode()
    lol += b']>\n<Pay xmlns="urn:t"><Name>&lol9;</Name><Amt>1.00</Amt></Pay>'
    assert refused(lol, schema=schema_path).code == DOCTYPE_FORBIDDEN


def test_external_dtd_is_refused(schema_path):
    data = b'<?xml version="1.0"?><!DOCTYPE Pay SYSTEM "http://127.0.0.1:9/evil.dtd"><Pay xmlns="urn:t"/>'
    assert refused(data, schema=schema_path).code == DOCTYPE_FORBIDDEN


def test_doctype_hidden_behind_a_comment_is_still_refused_after_parsing(schema_path, secret_file):
    # The byte scan stops at the '<a>' inside the comment; the parsed tree's DOCTYPE is caught instead,
    # and the entity was never resolved on the way.
    data = (f'<!-- <a> --><!DOCTYPE Pay [<!ENTITY s SYSTEM "file://{secret_file}">]>'
            f'<Pay xmlns="urn:t"><Name>&s;</Name><Amt>1.00</Amt></Pay>').encode()
    error = refused(data, schema=schema_path)
    assert error.code == DOCTYPE_FORBIDDEN and "TOP-SECRET" not in str(error)


def test_doctype_in_utf16_is_refused(schema_path):
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE Pay [<!ENTITY x "y">]><Pay xmlns="urn:t"/>'.encode("utf-16")
    assert refused(data, schema=schema_path).code == DOCTYPE_FORBIDDEN


def test_oversized_is_refused_before_parsing(schema_path, monkeypatch):
    def must_not_parse(*args, **kwargs):
        raise AssertionError("parsed an oversized document")

    monkeypatch.setattr(hardened.etree, "fromstring", must_not_parse)
    error = refused(b"<not even xml" + b" " * 200, schema=schema_path, max_bytes=100)
    assert error.code == OVERSIZED and "100" in str(error)


def test_malformed_names_the_line(schema_path):
    error = refused(b'<?xml version="1.0"?>\n<Pay xmlns="urn:t">\n<Name>x</Pay>', schema=schema_path)
    assert error.code == MALFORMED and error.line == 3 and "line 3" in str(error)


def test_empty_document_is_malformed(schema_path):
    assert refused(b"  \n", schema=schema_path).code == MALFORMED


def test_schema_invalid_names_the_line_and_the_field(schema_path):
    data = b'<?xml version="1.0"?>\n<Pay xmlns="urn:t">\n<Name>x</Name>\n<Amt>12.5</Amt></Pay>'
    error = refused(data, schema=schema_path)
    assert error.code == SCHEMA_INVALID and error.line == 4 and "Amt" in str(error)


def test_text_is_refused_as_a_type_error(schema_path):
    with pytest.raises(TypeError):
        parse_and_validate(VALID.decode(), schema=schema_path, max_bytes=1000)


def test_huge_text_node_is_refused_without_huge_tree():
    # libxml2's default limit for one text node is 10 MB; huge_tree would lift it.
    data = b"<a>" + b"x" * (10_000_001) + b"</a>"
    assert pytest.raises(XmlRefused, parse, data, max_bytes=len(data)).value.code == MALFORMED


def test_schemas_are_compiled_once_per_thread(schema_path):
    first = load_schema(schema_path)
    assert load_schema(str(schema_path)) is first
    other = []
    thread = threading.Thread(target=lambda: other.append(load_schema(schema_path)))
    thread.start()
    thread.join()
    assert isinstance(other[0], etree.XMLSchema) and other[0] is not first
