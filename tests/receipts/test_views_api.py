import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from rest_framework.test import APIClient

from treasury.access.models import Membership
from treasury.receipts import services
from treasury.receipts.models import Receipt
from treasury.receipts.services import issue_batch_receipt, issue_transfer_receipts


def make_user(username, organization, role="employer_operator"):
    user = User.objects.create_user(username=username, password="a-long-password-1")
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    Membership.objects.create(user=user, organization=organization)
    return user


@pytest.fixture
def receipts(world, now):
    mine = world.transfer(amount_fen=1234567)
    theirs = world.transfer(amount_fen=500, payer=world.other_payer, batch_ref="OTHER-BATCH")
    issue_transfer_receipts(transfer_ids=[mine.pk, theirs.pk], now=now)
    issue_batch_receipt(batch_ref="PAY-2025-03", now=now)
    return {
        "mine": Receipt.objects.get(transfer=mine),
        "theirs": Receipt.objects.get(transfer=theirs),
        "batch": Receipt.objects.get(kind=Receipt.Kind.BATCH),
    }


def pdf_of(receipt):
    return services.receipt_file(receipt.file_path).read_bytes()


def upload(client, data, url="/receipts/verify/", name="r.pdf"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(url, {"file": SimpleUploadedFile(name, data, content_type="application/pdf")})


def test_verify_page_genuine_and_edited(receipts):
    client = Client()
    assert client.get("/receipts/verify/").status_code == 200
    response = upload(client, pdf_of(receipts["mine"]))
    assert response.status_code == 200
    assert b"verification genuine" in response.content and "张*三".encode() in response.content
    edited = pdf_of(receipts["mine"]).replace(b"/Producer", b"/Produces", 1)
    response = upload(client, edited)
    assert response.status_code == 422
    assert b"<code>file_altered</code>" in response.content


def test_verify_page_needs_csrf_token(receipts):
    client = Client(enforce_csrf_checks=True)
    assert upload(client, pdf_of(receipts["mine"])).status_code == 403


def test_qr_link_shows_facts_only_with_the_right_code(receipts):
    receipt = receipts["mine"]
    client = Client()
    response = client.get(f"/receipts/verify/{receipt.number}/", {"c": receipt.verification_code})
    assert response.status_code == 200
    assert "张*三".encode() in response.content and "¥12,345.67".encode() in response.content
    assert "张晓三".encode() not in response.content
    for wrong in (receipt.verification_code[:-1] + "Z" if receipt.verification_code[-1] != "Z" else "AAAAAAAAAA", ""):
        response = client.get(f"/receipts/verify/{receipt.number}/", {"c": wrong})
        assert response.status_code == 404
        assert "张*三".encode() not in response.content
    assert client.get("/receipts/verify/R202503140000099999/", {"c": receipt.verification_code}).status_code == 404


def test_qr_url_printed_on_receipt_opens_the_page(receipts):
    receipt = receipts["mine"]
    url = services.verification_url(receipt.number, receipt.verification_code)
    assert url.startswith("https://pay.example.gov.cn/receipts/verify/")
    path = url.removeprefix("https://pay.example.gov.cn")
    assert Client().get(path).status_code == 200


def test_download_is_scoped_to_the_users_organization(world, receipts):
    client = Client()
    client.force_login(make_user("clerk1", world.employer))
    response = client.get(f"/receipts/{receipts['mine'].number}.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content) == pdf_of(receipts["mine"])
    assert client.get(f"/receipts/{receipts['theirs'].number}.pdf").status_code == 404
    assert client.get(f"/receipts/{receipts['batch'].number}.pdf").status_code == 200

    other = Client()
    other.force_login(make_user("clerk2", world.other_org))
    assert other.get(f"/receipts/{receipts['mine'].number}.pdf").status_code == 404
    assert other.get(f"/receipts/{receipts['batch'].number}.pdf").status_code == 404
    assert other.get(f"/receipts/{receipts['theirs'].number}.pdf").status_code == 200


def test_auditor_sees_every_organization(world, receipts):
    client = Client()
    client.force_login(make_user("auditor1", world.employer, role="auditor"))
    assert client.get(f"/receipts/{receipts['theirs'].number}.pdf").status_code == 200


def test_api_list_detail_download_scoped(world, receipts):
    api = APIClient()
    assert api.get("/api/v1/receipts/").status_code in (401, 403)
    api.force_authenticate(make_user("clerk1", world.employer))
    listed = api.get("/api/v1/receipts/").json()
    numbers = {r["number"] for r in listed["results"]}
    assert numbers == {receipts["mine"].number, receipts["batch"].number}
    detail = api.get(f"/api/v1/receipts/{receipts['mine'].number}/").json()
    assert detail["facts"]["amount_display"] == "¥12,345.67" and detail["facts"]["payee"]["name"] == "张*三"
    assert api.get(f"/api/v1/receipts/{receipts['theirs'].number}/").status_code == 404
    response = api.get(f"/api/v1/receipts/{receipts['mine'].number}/download/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == pdf_of(receipts["mine"])
    assert api.get(f"/api/v1/receipts/{receipts['theirs'].number}/download/").status_code == 404
    assert {r["number"] for r in api.get("/api/v1/receipts/", {"kind": "batch"}).json()["results"]} == {
        receipts["batch"].number
    }


def test_api_verify_is_public(receipts):
    api = APIClient()
    response = upload(api, pdf_of(receipts["mine"]), url="/api/v1/receipts/verify/")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["receipt_number"] == receipts["mine"].number and body["reasons"] == []
    body = upload(api, b"%PDF-1.4 nonsense", url="/api/v1/receipts/verify/").json()
    assert body["ok"] is False and [r["code"] for r in body["reasons"]] == ["not_a_pdf"]
    assert api.post("/api/v1/receipts/verify/", {}).status_code == 400


def test_api_schema_documents_receipts(db):
    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/v1/receipts/verify/" in response.content


def test_a_batch_summary_is_the_paying_organizations_not_its_payees(world, now):
    """The summary adds up every payee of the batch: the employer that ran it and auditors see it; an organization
    paid in the batch, or an employee signed in for themselves, sees the receipt of their own transfer only."""
    from treasury.access.models import PersonalAccount

    to_person = world.transfer(amount_fen=1234567)
    to_other_org = world.transfer(amount_fen=500, payee=world.other_payer)
    issue_transfer_receipts(transfer_ids=[to_person.pk, to_other_org.pk], now=now)
    summary = issue_batch_receipt(batch_ref="PAY-2025-03", now=now)
    employee = User.objects.create_user("zhang", password="a-long-password-1")
    employee.groups.add(Group.objects.get_or_create(name="individual")[0])
    PersonalAccount.objects.create(user=employee, person=world.person)

    def seen_by(user):
        api = APIClient()
        api.force_authenticate(user)
        listed = {r["number"] for r in api.get("/api/v1/receipts/").json()["results"]}
        page = Client()
        page.force_login(user)
        downloads = page.get(f"/receipts/{summary.number}.pdf").status_code == 200
        assert downloads == (summary.number in listed)
        return listed

    payee_org = seen_by(make_user("clerk2", world.other_org))
    assert payee_org == {Receipt.objects.get(transfer=to_other_org).number}
    assert seen_by(employee) == {Receipt.objects.get(transfer=to_person).number}
    assert summary.number in seen_by(make_user("clerk1", world.employer))
    assert summary.number in seen_by(make_user("auditor1", world.other_org, role="auditor"))
