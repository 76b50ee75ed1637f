"""The TIPS message log's pages and REST API: who sees them, filters, bodies (GBK too) with personal data masked, the
whole message for auditors, compression."""
import pytest

from adapters.tips import messages as m
from adapters.tips.messagelog import body_bytes, record_message
from adapters.tips.models import TipsMessage
from tests import factories as f
from tests.adapters.tips.conftest import batch, handler, real_time, signed_request, tax_key  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def log(**changes) -> TipsMessage:
    message = real_time()
    entry = dict(direction="in", body=m.real_time_document(message=message, encoding="GBK"), msg_no="3001",
                 msg_id=message.head.msg_id, msg_ref=message.head.msg_ref, key=f"13201000000-20260302-{message.item.tra_no}",
                 peer="100000000002", signature_valid=True, result="90000", http_status=200, duration_ms=3)
    entry.update(changes)
    return record_message(**entry)


@pytest.mark.parametrize("role, status, download", [("tax_staff", 200, 403), ("auditor", 200, 200), ("admin", 200, 200),
                                                    ("finance_clerk", 403, 403), ("employer_operator", 403, 403)])
def test_pages_and_api_are_for_tax_staff_auditors_and_admins(client, role, status, download):
    message = log()
    client.force_login(f.make_user(role=role))
    assert client.get("/tips/messages/").status_code == status
    assert client.get(f"/tips/messages/{message.pk}/").status_code == status
    assert client.get(f"/tips/messages/{message.pk}/body.xml").status_code == download  # the message as it travelled
    assert client.get("/api/v1/tips/messages/").status_code == status
    assert client.get(f"/api/v1/tips/messages/{message.pk}/").status_code == status


def test_anonymous_is_sent_to_login(client):
    response = client.get("/tips/messages/")
    assert response.status_code == 302 and "/login" in response["Location"]


def test_list_filters(client):
    first = log()
    log(result="91005", signature_valid=False)
    log(direction="out", msg_no="2001", msg_id="20260302000000000001", msg_ref=first.msg_id, key=first.key)
    client.force_login(f.make_user(role="tax_staff"))
    assert client.get("/tips/messages/").content.decode().count("data-message=") == 3
    assert client.get("/tips/messages/?result=91005").content.decode().count("data-message=") == 1
    assert client.get("/tips/messages/?msg_no=2001").content.decode().count("data-message=") == 1
    assert client.get(f"/tips/messages/?msg_id={first.msg_id}").content.decode().count("data-message=") == 2
    api = client.get("/api/v1/tips/messages/?direction=out").json()
    rows = api["results"] if isinstance(api, dict) else api
    assert [row["msg_no"] for row in rows] == ["2001"] and "body_xml" not in rows[0]
    assert rows[0]["msg_name"] == "实时扣税回执"  # in the default language
    assert client.get("/api/v1/tips/messages/?msg_no=12").status_code == 400


def test_detail_shows_the_gbk_body_pretty_and_links_the_reply(client):
    request = log()
    reply = log(direction="out", msg_no="2001", msg_id="20260302000000000001", msg_ref=request.msg_id, key=request.key)
    client.force_login(f.make_user(role="auditor"))
    page = client.get(f"/tips/messages/{request.pk}/").content.decode()
    assert "&lt;RealHead3001&gt;" in page and "&lt;TaxVouNo&gt;" in page
    assert f"/tips/messages/{reply.pk}/" in page
    detail = client.get(f"/api/v1/tips/messages/{request.pk}/").json()
    assert "&lt;RealHead3001&gt;" not in detail["body_xml"] and "<RealHead3001>" in detail["body_xml"]
    assert detail["signature_valid"] is True


@pytest.mark.parametrize("role", ["tax_staff", "auditor"])
def test_the_body_is_shown_with_names_wallets_and_ids_masked_and_downloaded_whole_by_auditors(client, role):
    message = real_time(tax_pay_name="张三丰", hand_org_name="张三丰", remark="代缴 11010519491231002X",
                        pay_acct="0010000000000077")
    entry = log(body=m.real_time_document(message=message, encoding="GBK"))
    client.force_login(f.make_user(role=role))
    page = client.get(f"/tips/messages/{entry.pk}/").content.decode()
    shown = client.get(f"/api/v1/tips/messages/{entry.pk}/").json()["body_xml"]
    for text in (page, shown):
        assert "张三丰" not in text and "张*丰" in text
        assert "11010519491231002X" not in text and "110***********002X" in text
        assert "0010000000000077" not in text and "0010********0077" in text
        assert message.item.tax_vou_no in text and message.item.tra_no in text  # not personal: shown as they are
    assert 'data-testid="masked-note"' in page
    download = client.get(f"/tips/messages/{entry.pk}/body.xml")
    if role == "auditor":
        assert download.content == body_bytes(entry) and "张三丰".encode("gbk") in download.content
        assert 'data-testid="body-download"' in page
    else:
        assert download.status_code == 403 and 'data-testid="body-download"' not in page


def test_names_and_wallets_written_as_cdata_are_masked_too(client):
    """CDATA is the same text to XML: the page and the API read the body as XML before masking it."""
    message = real_time(tax_pay_name="张三丰", hand_org_name="张三丰", pay_acct="0010000000000077")
    document = m.real_time_document(message=message)
    for tag, value in (("TaxPayName", "张三丰"), ("HandOrgName", "张三丰"), ("PayAcct", "0010000000000077")):
        document = document.replace(f"<{tag}>{value}</{tag}>".encode(), f"<{tag}><![CDATA[{value}]]></{tag}>".encode())
    entry = log(body=document)
    client.force_login(f.make_user(role="tax_staff"))
    page = client.get(f"/tips/messages/{entry.pk}/").content.decode()
    shown = client.get(f"/api/v1/tips/messages/{entry.pk}/").json()["body_xml"]
    for text in (page, shown):
        assert "张三丰" not in text and "0010000000000077" not in text and "张*丰" in text


def test_a_refused_document_is_logged_as_a_document_not_as_base64(client, tax_key, handler):
    """The tax system's document inside a refused request is logged as itself (masked when shown), not as the
    SOAP envelope, where it is base64 no element name would mask."""
    good = m.real_time_document(message=real_time(tax_pay_name="张三丰", hand_org_name="张三丰",
                                                  pay_acct="0010000000000077", remark="x"))
    document = good.replace(b"<Remark>x</Remark>", b"<Remark>" + b"x" * 201 + b"</Remark>", 1)  # past cfx.xsd
    response = client.generic("POST", "/tips/soap/", signed_request(document, tax_key),
                              content_type="text/xml; charset=utf-8", HTTP_SOAPACTION=f'"{m.SOAP_ACTION}"')
    assert response.status_code == 500 and b"92004" in response.content
    entry = TipsMessage.objects.get(direction="in")
    assert body_bytes(entry) == document
    client.force_login(f.make_user(role="tax_staff"))
    page = client.get(f"/tips/messages/{entry.pk}/").content.decode()
    shown = client.get(f"/api/v1/tips/messages/{entry.pk}/").json()["body_xml"]
    for text in (page, shown):
        assert "张三丰" not in text and "0010000000000077" not in text and "张*丰" in text


def test_large_bodies_are_compressed_and_come_back_whole(client):
    data = m.batch_document(message=batch(300))
    message = log(body=data, msg_no="3102")
    assert message.body_encoding == "zlib" and len(bytes(message.body)) < len(data) // 3
    assert body_bytes(TipsMessage.objects.get(pk=message.pk)) == data
    client.force_login(f.make_user(role="auditor"))
    assert client.get(f"/tips/messages/{message.pk}/body.xml").content == data


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_pages_follow_the_language(client, language):
    """The page's own words follow the language switch; codes, keys and the body are data and stay."""
    request = log(signature_valid=False)
    log(direction="out", msg_no="2001", msg_id="20260302000000000001", msg_ref=request.msg_id, key=request.key)
    client.force_login(f.make_user(role="tax_staff"))
    client.cookies["django_language"] = language
    listed = client.get("/tips/messages/").content.decode()
    detail = client.get(f"/tips/messages/{request.pk}/").content.decode()
    empty = client.get("/tips/messages/?result=00000").content.decode()
    chrome = [(listed, "TIPS message log", "TIPS 报文日志"), (listed, "2 messages", "2 条报文"),
              (listed, "Business key", "业务键"), (listed, "Result code", "处理码"), (listed, ">Invalid<", ">无效<"),
              (listed, "Message no.", "报文编号"), (empty, "No messages match.", "没有符合条件的报文。"),
              (detail, "Messages of the same exchange:", "同一交换的报文："), (detail, "Peer node", "对方节点"),
              (detail, "Message body", ">报文<"),
              (detail, "Names, wallets and ID numbers are masked;", "姓名、钱包和证件号码已脱敏；"),
              (listed, "</span> Real-time deduction reply<", "</span> 实时扣税回执<"),  # what each number is
              (detail, "3001 Real-time deduction <", "3001 实时扣税 <"), (listed, ">2102 Batch deduction result<",
                                                                      ">2102 批量扣税结果<")]
    for page, en, zh in chrome:
        assert (en if language == "en" else zh) in page
        assert (zh if language == "en" else en) not in page
    assert "90000" in detail and "&lt;RealHead3001&gt;" in detail


def test_every_message_number_is_named_in_both_languages():
    from django.utils import translation

    from adapters.tips.models import MESSAGE_NAMES

    assert set(MESSAGE_NAMES) == set(m.MESSAGE_NUMBERS)
    with translation.override("zh-hans"):
        assert all(any("\u4e00" <= ch <= "\u9fff" for ch in str(name)) for name in MESSAGE_NAMES.values())
