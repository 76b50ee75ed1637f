"""Tax pages and API as tax staff meet them: sign an agreement -> the tax system verifies it -> a
real-time deduction arrives -> the lists, the package pages and the daily entry report show it; the
state changes by page and API; scoping (another tax authority's agreement is a 404, employer users get
nothing), auditors read-only, CSRF, error payloads with codes. Against the sandbox operator."""
from __future__ import annotations

import csv
import io
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from adapters.tips.interface import ResultCode
from tax import services
from tax.handlers import TaxHandler
from tax.models import AgreementState, DeductionKind, DeductionPackage, DeductionState, PackageState, TaxAgreement, TaxDeduction
from tests.clients import api_as, logged_in
from tests import factories as f
from tests.tax.helpers import ENTRUST_DATE, TAX_ORG_CODE, batch, item, real_time, verification
from treasury.access import roles
from treasury.identifiers import mask_name, mask_resident_id, mask_wallet_id
from treasury.models import Organization

API = "/api/v1/tax"
READ_PAGES = ["tax:agreement-list", "tax:deduction-list", "tax:package-list", "tax:entry-report", "tax:reversal-list",
              "tax:agreement-csv", "tax:deduction-csv"]
STAFF_PAGES = ["tax:agreement-sign", "tax:own-tax"]


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def sign_data(payer, protocol_no="P-PAGE-0001", **overrides) -> dict:
    data = {"tax_org_code": TAX_ORG_CODE, "taxpayer_id": payer.taxpayer_id, "taxpayer_name": payer.name,
            "wallet_id": payer.wallet_id, "protocol_no": protocol_no, "signed_date": ENTRUST_DATE.isoformat()}
    data.update(overrides)
    return data


def verify(agreement: TaxAgreement) -> str:
    """The tax system's 9114, as the TIPS adapter hands it to the domain; the 9115 result."""
    agreement = TaxAgreement.objects.select_related("wallet").get(pk=agreement.pk)
    return services.handle_agreement_verification(message=verification(agreement), now=timezone.now()).vc_result


@pytest.fixture
def people(tax):
    employer = f.make_organization(org_type=Organization.Type.EMPLOYER)
    return {
        "auditor": f.make_user(role=roles.AUDITOR),
        "admin": f.make_user(role=roles.ADMIN),
        "employer": f.make_user(role=roles.EMPLOYER_OPERATOR, organization=employer),
    }


# ---------------------------------------------------------------------------------------------
# The whole flow: API sign -> verification -> real-time deduction -> lists and report
# ---------------------------------------------------------------------------------------------


def test_sign_by_api_verify_deduct_and_see_it_everywhere(tax):
    payer = tax.taxpayer(balance_fen=5_000_00)
    api = api_as(tax.staff)
    response = api.post(f"{API}/agreements/", sign_data(payer, "P-API-0001"), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == AgreementState.PENDING and body["protocol_no"] == "P-API-0001"
    assert body["wallet_id"] == mask_wallet_id(payer.wallet_id)
    assert body["taxpayer_id"] == payer.taxpayer_id  # an organization's credit code is not personal data
    assert [e["kind"] for e in body["history"]] == ["tax.agreement.signed"]
    assert body["available_actions"] == ["revoke"]
    agreement = TaxAgreement.objects.get(pk=body["id"])

    assert verify(agreement) == "0"
    detail = api.get(f"{API}/agreements/{agreement.pk}/").json()
    assert detail["state"] == AgreementState.ACTIVE and detail["last_verification_result"] == "0"
    assert [e["kind"] for e in detail["history"]] == [
        "tax.agreement.signed", "tax.agreement.verification_passed", "tax.agreement.verified",
        "tax.agreement.activated"]
    assert detail["available_actions"] == ["suspend", "revoke"]
    assert (detail["history"][-1]["kind_label"], detail["history"][-1]["actor_label"]) == ("协议已生效", "税务系统")

    message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=1_234_56)
    assert services.deduct_real_time(message=message, now=timezone.now()).result == ResultCode.SUCCESS

    listed = api.get(f"{API}/deductions/", {"result_code": "90000"}).json()
    assert listed["count"] == 1
    (row,) = listed["results"]
    assert (row["tra_no"], row["amount_fen"], row["amount_yuan"], row["state"], row["result_code"]) == (
        message.item.tra_no, 1_234_56, "1234.56", DeductionState.SUCCEEDED, "90000")
    assert row["pay_acct"] == mask_wallet_id(payer.wallet_id) and row["agreement_id"] == agreement.pk
    assert api.get(f"{API}/deductions/{row['id']}/").json()["tax_vou_no"] == message.item.tax_vou_no
    assert api.get(f"{API}/deductions/", {"result_code": "24007"}).json()["count"] == 0

    report = api.get(f"{API}/entry-report/", {"day": timezone.localdate().isoformat()}).json()
    assert (report["amount_fen"], report["central_fen"], report["local_fen"]) == (1_234_56, 617_28, 617_28)
    assert [(r["tax_type_name"], r["budget_level_code"]) for r in report["rows"]] == [("增值税", "3")]
    csv_response = api.get(f"{API}/entry-report/csv/", {"day": timezone.localdate().isoformat()})
    assert csv_response.status_code == 200 and csv_response["Content-Type"].startswith("text/csv")
    text = csv_response.content.decode("utf-8-sig")
    assert "增值税" in text and "1234.56" in text and "617.28" in text
    pdf_response = api.get(f"{API}/entry-report/pdf/", {"day": timezone.localdate().isoformat()})
    assert pdf_response.status_code == 200 and pdf_response["Content-Type"] == "application/pdf"
    pdf_text = _pdf_text(pdf_response.content)
    assert "国库入库日报" in pdf_text and timezone.localdate().isoformat() in pdf_text
    assert "增值税" in pdf_text and "1234.56" in pdf_text and "617.28" in pdf_text
    assert "壹仟贰佰叁拾肆元伍角陆分" in pdf_text and TAX_ORG_CODE in pdf_text  # in capitals; whose entries

    client = logged_in(tax.staff)
    page = client.get(reverse("tax:deduction-list"), {"result_code": "90000"}).content.decode()
    assert message.item.tra_no in page and "¥1,234.56" in page and 'data-result="90000"' in page
    assert payer.wallet_id not in page and mask_wallet_id(payer.wallet_id) in page
    assert payer.name in page  # an organization's name is not masked; a person's is (below)
    report_page = client.get(reverse("tax:entry-report"), {"day": timezone.localdate().isoformat()}).content.decode()
    assert "增值税" in report_page and "¥617.28" in report_page and "¥1,234.56" in report_page
    pdf_link = re.search(r'href="([^"]+)" data-testid="report-pdf"', report_page).group(1).replace("&amp;", "&")
    assert "1234.56" in _pdf_text(client.get(pdf_link).content)
    detail_page = client.get(reverse("tax:agreement-detail", args=[agreement.pk])).content.decode()
    assert 'data-kind="tax.agreement.activated"' in detail_page and message.item.tra_no in detail_page


# ---------------------------------------------------------------------------------------------
# Pages: sign form, actions by state, roles
# ---------------------------------------------------------------------------------------------


def test_sign_form_shows_errors_then_signs_and_actions_follow_the_state(tax):
    payer = tax.taxpayer()
    client = logged_in(tax.staff)
    form = client.get(reverse("tax:agreement-sign"))
    assert form.status_code == 200 and f'value="{TAX_ORG_CODE}"' in form.content.decode()
    # A date input only reads ISO dates: anything else leaves it empty and the browser refuses to submit.
    assert f'type="date" name="signed_date" value="{timezone.localdate().isoformat()}"' in form.content.decode()

    bad = client.post(reverse("tax:agreement-sign"), sign_data(payer, wallet_id="123"))
    assert bad.status_code == 400
    assert 'data-testid="form-errors"' in bad.content.decode() and not TaxAgreement.objects.exists()
    stranger = client.post(reverse("tax:agreement-sign"), sign_data(payer, taxpayer_name="别人有限公司"))
    assert stranger.status_code == 400 and "钱包户名与纳税人名称不符" in stranger.content.decode()  # the service's refusal

    response = client.post(reverse("tax:agreement-sign"), sign_data(payer), follow=True)
    agreement = TaxAgreement.objects.get()
    assert response.redirect_chain[-1][0] == reverse("tax:agreement-detail", args=[agreement.pk])
    html = response.content.decode()
    assert 'data-state="pending"' in html and 'data-action="revoke"' in html and 'data-action="suspend"' not in html
    again = client.post(reverse("tax:agreement-sign"), sign_data(payer, "P-PAGE-0002"))
    assert again.status_code == 400 and "不能重复签约" in again.content.decode()

    assert verify(agreement) == "0"
    action = lambda name, **data: client.post(  # noqa: E731
        reverse("tax:agreement-action", args=[agreement.pk, name]), data, follow=True)
    no_reason = action("suspend")
    assert messages_of(no_reason) == ["请填写原因。"]
    assert TaxAgreement.objects.get().state == AgreementState.ACTIVE
    assert 'data-state="suspended"' in action("suspend", reason="纳税人申请暂停").content.decode()
    wrong = action("suspend", reason="again")
    assert any("协议当前状态不允许此操作" in m for m in messages_of(wrong)) and TaxAgreement.objects.get().state == "suspended"
    assert 'data-state="active"' in action("resume", reason="恢复").content.decode()
    revoked = action("revoke", reason="纳税人注销").content.decode()
    assert 'data-state="revoked"' in revoked and "纳税人注销" in revoked and 'data-action=' not in revoked
    assert client.post(reverse("tax:agreement-action", args=[agreement.pk, "explode"])).status_code == 404

    listed = client.get(reverse("tax:agreement-list"), {"state": "revoked"}).content.decode()
    assert f'data-agreement="{agreement.pk}"' in listed
    assert f'data-agreement="{agreement.pk}"' not in client.get(
        reverse("tax:agreement-list"), {"state": "active"}).content.decode()
    assert f'data-agreement="{agreement.pk}"' in client.get(
        reverse("tax:agreement-list"), {"q": "P-PAGE"}).content.decode()


def test_a_persons_agreement_is_masked_in_lists(tax):
    person = tax.taxpayer(personal=True, name="张三丰")
    agreement = tax.sign(person)
    html = logged_in(tax.staff).get(reverse("tax:agreement-list")).content.decode()
    assert mask_name("张三丰") in html and "张三丰" not in html
    assert mask_resident_id(person.taxpayer_id) in html and person.taxpayer_id not in html
    body = api_as(tax.staff).get(f"{API}/agreements/{agreement.pk}/").json()
    assert (body["taxpayer_name"], body["taxpayer_id"]) == (mask_name("张三丰"), mask_resident_id(person.taxpayer_id))
    # and in the list's CSV, which holds every agreement the filters select
    company = tax.sign(tax.taxpayer(name="示范导出有限公司"))
    other_staff_file = logged_in(tax.other_staff).get(reverse("tax:agreement-csv"))
    assert len(b"".join(other_staff_file.streaming_content).decode("utf-8").strip().splitlines()) == 1  # header only
    response = logged_in(tax.staff).get(reverse("tax:agreement-csv"), {"q": agreement.protocol_no})
    assert re.fullmatch(r'attachment; filename="tax-agreements-\d{8}\.csv"', response["Content-Disposition"])
    text = b"".join(response.streaming_content).decode("utf-8")
    header, *rows = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    assert [row[0] for row in rows] == [agreement.protocol_no]  # the search applies; the company's is not there
    row = dict(zip(header, rows[0]))
    assert row["纳税人 taxpayer"] == mask_name("张三丰") and "张三丰" not in text
    assert row["纳税人识别号 taxpayer ID"] == mask_resident_id(person.taxpayer_id) and person.taxpayer_id not in text
    assert row["付款钱包 payer wallet"] == mask_wallet_id(person.wallet_id) and person.wallet_id not in text
    assert row["状态 state"] == str(AgreementState(agreement.state).label)
    everything = b"".join(logged_in(tax.staff).get(reverse("tax:agreement-csv")).streaming_content).decode("utf-8")
    assert company.protocol_no in everything and "示范导出有限公司" in everything  # an organization's name is not masked
    from_api = api_as(tax.staff).get(f"{API}/agreements/csv/", {"q": agreement.protocol_no})
    assert from_api.status_code == 200 and b"".join(from_api.streaming_content).decode("utf-8") == text


def test_pages_render_per_role(tax, people):
    staff, auditor, admin, employer = tax.staff, people["auditor"], people["admin"], people["employer"]
    agreement = tax.sign(tax.taxpayer())
    for user in (staff, auditor, admin):
        client = logged_in(user)
        for name in READ_PAGES:
            assert client.get(reverse(name)).status_code == 200, (user, name)
        assert client.get(reverse("tax:agreement-detail", args=[agreement.pk])).status_code == 200
    for name in STAFF_PAGES:
        assert logged_in(staff).get(reverse(name)).status_code == 200
        assert logged_in(admin).get(reverse(name)).status_code == 200
        assert logged_in(auditor).get(reverse(name)).status_code == 403
    employer_client = logged_in(employer)
    for name in READ_PAGES + STAFF_PAGES:
        assert employer_client.get(reverse(name)).status_code == 403
    assert employer_client.get(reverse("tax:agreement-detail", args=[agreement.pk])).status_code == 403
    assert api_as(employer).get(f"{API}/agreements/").json()["code"] == "role_required"
    assert Client().get(reverse("tax:agreement-list")).status_code == 302  # to the login page


def test_another_tax_authority_sees_nothing_and_acts_on_nothing(tax):
    payer = tax.taxpayer()
    agreement = tax.signed_and_verified(payer)
    services.deduct_real_time(message=real_time(tax, payer=payer, protocol_no=agreement.protocol_no,
                                                amount_fen=10_00), now=timezone.now())
    other = logged_in(tax.other_staff)
    assert other.get(reverse("tax:agreement-detail", args=[agreement.pk])).status_code == 404
    assert other.post(reverse("tax:agreement-action", args=[agreement.pk, "suspend"]),
                      {"reason": "x"}).status_code == 404
    assert agreement.protocol_no not in other.get(reverse("tax:agreement-list")).content.decode()
    assert 'data-deduction=' not in other.get(reverse("tax:deduction-list")).content.decode()
    api = api_as(tax.other_staff)
    missing = api.get(f"{API}/agreements/{agreement.pk}/")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert api.post(f"{API}/agreements/{agreement.pk}/suspend/", {"reason": "x"}, format="json").status_code == 404
    assert api.get(f"{API}/agreements/").json()["count"] == 0
    assert api.get(f"{API}/deductions/").json()["count"] == 0
    deduction = TaxDeduction.objects.get()
    assert api.get(f"{API}/deductions/{deduction.pk}/").status_code == 404
    assert api.get(f"{API}/entry-report/").json()["rows"] == []
    other_pdf = _pdf_text(api.get(f"{API}/entry-report/pdf/").content)
    assert "本日无入库" in other_pdf and "增值税" not in other_pdf
    # Signing for another authority's code is refused too.
    refused = api.post(f"{API}/agreements/", sign_data(tax.taxpayer(), "P-OTHER"), format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "access_denied"
    assert TaxAgreement.objects.get(pk=agreement.pk).state == AgreementState.ACTIVE


def test_auditors_read_everything_and_change_nothing(tax, people):
    auditor = people["auditor"]
    agreement = tax.signed_and_verified(tax.taxpayer())
    client = logged_in(auditor)
    html = client.get(reverse("tax:agreement-detail", args=[agreement.pk])).content.decode()
    assert 'data-testid="agreement-actions"' not in html
    assert "data-testid=\"sign-link\"" not in client.get(reverse("tax:agreement-list")).content.decode()
    assert client.post(reverse("tax:agreement-action", args=[agreement.pk, "suspend"]),
                       {"reason": "x"}).status_code == 403
    api = api_as(auditor)
    assert api.get(f"{API}/agreements/{agreement.pk}/").json()["available_actions"] == []
    refused = api.post(f"{API}/agreements/{agreement.pk}/suspend/", {"reason": "x"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "read_only_role"
    assert api.post(f"{API}/agreements/", sign_data(tax.taxpayer()), format="json").status_code == 403
    assert TaxAgreement.objects.get(pk=agreement.pk).state == AgreementState.ACTIVE


def test_csrf_is_enforced_on_pages_and_session_api_calls(tax):
    payer = tax.taxpayer()
    agreement = tax.signed_and_verified(payer)
    client = logged_in(tax.staff, enforce_csrf_checks=True)
    assert client.post(reverse("tax:agreement-sign"), sign_data(payer, "P-CSRF")).status_code == 403
    assert client.post(reverse("tax:agreement-action", args=[agreement.pk, "suspend"]),
                       {"reason": "x"}).status_code == 403
    page = client.get(reverse("tax:agreement-detail", args=[agreement.pk])).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    ok = client.post(reverse("tax:agreement-action", args=[agreement.pk, "suspend"]),
                     {"reason": "x", "csrfmiddlewaretoken": token})
    assert ok.status_code == 302 and TaxAgreement.objects.get().state == AgreementState.SUSPENDED
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(tax.staff)  # a session, not a token: CSRF applies
    refused = api.post(f"{API}/agreements/{agreement.pk}/resume/", {"reason": "x"}, format="json")
    assert refused.status_code == 403 and TaxAgreement.objects.get().state == AgreementState.SUSPENDED


def test_api_errors_carry_codes(tax):
    payer = tax.taxpayer()
    api = api_as(tax.staff)
    first = api.post(f"{API}/agreements/", sign_data(payer, "P-ERR-1"), format="json").json()
    cases = [
        (api.post(f"{API}/agreements/", sign_data(payer, "P-ERR-1"), format="json"), 409, "already_signed"),
        (api.post(f"{API}/agreements/", sign_data(tax.taxpayer(), "P-ERR-1"), format="json"), 409, "protocol_taken"),
        (api.post(f"{API}/agreements/", sign_data(payer, "P-ERR-2", wallet_id="12"), format="json"), 400, None),
        (api.post(f"{API}/agreements/", {"protocol_no": "x"}, format="json"), 400, "invalid"),
        (api.post(f"{API}/agreements/{first['id']}/suspend/", {"reason": "x"}, format="json"), 409, "invalid_state"),
        (api.post(f"{API}/agreements/{first['id']}/revoke/", {}, format="json"), 400, "invalid"),
        (api.get(f"{API}/agreements/999999/"), 404, "not_found"),
        (api.get(f"{API}/deductions/", {"kind": "nonsense"}), 400, "invalid"),
        (api.get(f"{API}/packages/", {"state": "nonsense"}), 400, "invalid"),
        (api.get(f"{API}/entry-report/", {"day": "yesterday"}), 400, "invalid"),
        (APIClient().get(f"{API}/agreements/"), 401, "not_authenticated"),
    ]
    for response, http_status, code in cases:
        body = response.json()
        assert response.status_code == http_status, body
        assert set(body) >= {"code", "message"} and body["message"], body
        if code:
            assert body["code"] == code, body
    revoked = api.post(f"{API}/agreements/{first['id']}/revoke/", {"reason": "作废"}, format="json")
    assert revoked.status_code == 200 and revoked.json()["state"] == AgreementState.REVOKED


# ---------------------------------------------------------------------------------------------
# Packages, own payments
# ---------------------------------------------------------------------------------------------


def test_package_pages_show_progress_and_the_2102_status(tax, tips_outbox):
    payer, poor = tax.taxpayer(balance_fen=1_000_00), tax.taxpayer(balance_fen=0)
    agreements = {p.wallet_id: tax.signed_and_verified(p) for p in (payer, poor)}
    items = [item(payer=payer, protocol_no=agreements[payer.wallet_id].protocol_no, amount_fen=100_00),
             item(payer=poor, protocol_no=agreements[poor.wallet_id].protocol_no, amount_fen=50_00)]
    TaxHandler().receive_batch(batch(tax, items, pack_no="00000777"))
    package = DeductionPackage.objects.get()
    assert package.state == PackageState.DONE

    client = logged_in(tax.staff)
    listed = client.get(reverse("tax:package-list")).content.decode()
    assert "00000777" in listed and 'data-acknowledged="true"' in listed
    html = client.get(reverse("tax:package-detail", args=[package.pk])).content.decode()
    assert 'data-state="done"' in html and 'data-acknowledged="true"' in html and "已确认" in html
    assert 'data-result="24007"' in html and 'data-result="90000"' in html
    assert "<script>" not in html  # done: nothing to poll
    progress = client.get(reverse("tax:package-progress", args=[package.pk])).json()
    assert (progress["all_num"], progress["decided"], progress["succeeded"], progress["failed"]) == (2, 2, 1, 1)
    assert progress["finished"] and progress["result_acknowledged"] and progress["succ_yuan"] == "¥100.00"
    api = api_as(tax.staff)
    assert api.get(f"{API}/packages/{package.pk}/progress/").json()["succ_amount_fen"] == 100_00
    assert api.get(f"{API}/packages/{package.pk}/").json()["result_acknowledged"] is True
    assert api.get(f"{API}/deductions/", {"package": package.pk}).json()["count"] == 2
    item_page = client.get(reverse("tax:deduction-detail", args=[
        TaxDeduction.objects.get(package=package, result_code="24007").pk])).content.decode()
    # a batch item's story is its package's stream; refused for want of money, it has no entries
    assert 'data-testid="stream-link"' in item_page and 'data-kind="tax.package.items_decided"' in item_page
    assert 'data-testid="no-entries"' in item_page and "尚未入库" in item_page and 'data-state="failed"' in item_page
    assert client.get(reverse("tax:deduction-list"), {"result_code": "24007"}).context["totals"]["count"] == 1
    other = logged_in(tax.other_staff)
    assert other.get(reverse("tax:package-detail", args=[package.pk])).status_code == 404
    assert other.get(reverse("tax:package-progress", args=[package.pk])).status_code == 404


def test_a_deduction_page_follows_the_money_from_the_request_to_the_wallet(tax, people):
    person = tax.taxpayer(personal=True, name="李四光", balance_fen=5_000_00)
    agreement = tax.signed_and_verified(person)
    message = real_time(tax, payer=person, protocol_no=agreement.protocol_no, amount_fen=1_234_56)
    assert services.deduct_real_time(message=message, now=timezone.now()).result == ResultCode.SUCCESS
    deduction = TaxDeduction.objects.get(tra_no=message.item.tra_no)
    url = reverse("tax:deduction-detail", args=[deduction.pk])

    client = logged_in(tax.staff)
    assert url in client.get(reverse("tax:deduction-list")).content.decode()  # the serial links to it
    html = client.get(url).content.decode()
    assert 'data-state="succeeded"' in html and "¥1,234.56" in html and message.item.tax_vou_no in html
    assert mask_name("李四光") in html and "李四光" not in html  # a person: masked, as in the lists
    assert mask_wallet_id(person.wallet_id) in html and person.wallet_id not in html
    assert reverse("tax:agreement-detail", args=[agreement.pk]) in html
    transfer_url, trace_url = reverse("transfer-detail", args=[deduction.transfer_id]), reverse(
        "trace:transfer", args=[deduction.transfer_id])
    assert transfer_url in html and trace_url in html
    assert client.get(transfer_url).status_code == 200 and client.get(trace_url).status_code == 200
    receipt = deduction.transfer.receipt  # issued once it settled
    assert reverse("receipts:download", args=[receipt.number]) in html
    # entered as VAT at city level, half central and half local
    assert re.search(r'data-testid="entries">.*增值税.*¥1,234\.56.*¥617\.28.*¥617\.28', html, re.S)
    assert [kind for kind in re.findall(r'<tr data-kind="([a-z_.]+)"', html)] == [
        "tax.deduction.received", "tax.deduction.debiting", "tax.deduction.succeeded"]

    assert logged_in(people["auditor"]).get(url).status_code == 200
    assert logged_in(people["employer"]).get(url).status_code == 403
    assert logged_in(tax.other_staff).get(url).status_code == 404

    body = api_as(tax.staff).get(f"{API}/deductions/{deduction.pk}/").json()  # the API says what the page shows
    assert (body["transfer_id"], body["transfer_state"], body["reversals"]) == (deduction.transfer_id, "settled", [])
    assert [(e["tax_type_name"], e["amount_fen"], e["central_fen"], e["local_fen"], e["reverses"])
            for e in body["entries"]] == [("增值税", 1_234_56, 617_28, 617_28, False)]
    assert [e["kind"] for e in body["history"]] == [
        "tax.deduction.received", "tax.deduction.debiting", "tax.deduction.succeeded"]
    assert "history" not in api_as(tax.staff).get(f"{API}/deductions/").json()["results"][0]  # the list stays lean


def test_a_package_still_being_deducted_is_polled_until_done(tax, tips_outbox, monkeypatch):
    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    monkeypatch.setattr(services, "_enqueue_process", lambda package_id: None)  # no worker has taken it yet
    TaxHandler().receive_batch(batch(tax, [item(payer=payer, protocol_no=agreement.protocol_no, amount_fen=10_00)]))
    package = DeductionPackage.objects.get()
    assert package.state == PackageState.RECEIVED
    client = logged_in(tax.staff)
    html = client.get(reverse("tax:package-detail", args=[package.pk])).content.decode()
    progress_url = reverse("tax:package-progress", args=[package.pk])
    assert f'data-progress-url="{progress_url}"' in html and "<script>" in html
    waiting = client.get(progress_url).json()
    assert (waiting["finished"], waiting["decided"], waiting["all_num"], waiting["percent"]) == (False, 0, 1, 0)
    services.process_package(package_id=package.pk, now=timezone.now())
    done = client.get(progress_url).json()
    assert (done["finished"], done["succeeded"], done["percent"], done["result_acknowledged"]) == (True, 1, 100, True)


def test_an_individual_pays_own_tax_at_the_counter(tax):
    person = tax.taxpayer(personal=True, balance_fen=2_000_00, name="李小明")
    tax.sign(person)  # the wallet's holder on record, against which the typed ID is checked
    client = logged_in(tax.staff)
    data = {"tax_org_code": TAX_ORG_CODE, "taxpayer_id": person.taxpayer_id, "taxpayer_name": person.name,
            "wallet_id": person.wallet_id, "tax_vou_no": "310000000000000001", "amount": "321.50",
            "tax_type_name": "个人所得税"}
    bad = client.post(reverse("tax:own-tax"), {**data, "amount": "abc"})
    assert bad.status_code == 400 and not TaxDeduction.objects.exists()
    stranger = client.post(reverse("tax:own-tax"), {**data, "taxpayer_name": "王五"})
    assert stranger.status_code == 400 and stranger.context["form"].errors["taxpayer_name"]  # under the name
    paid = client.post(reverse("tax:own-tax"), data, follow=True)
    assert any(m.startswith("缴税成功 · 税票 310000000000000001") for m in messages_of(paid))
    deduction = TaxDeduction.objects.get()
    assert (deduction.kind, deduction.state, deduction.amount_fen) == (DeductionKind.OWN, DeductionState.SUCCEEDED,
                                                                        321_50)
    html = paid.content.decode()
    assert mask_name("李小明") in html and "李小明" not in html and "¥321.50" in html
    assert tax.balance(person.wallet_id) == 2_000_00 - 321_50
    # The same voucher again, by the API: the first payment, nothing debited twice.
    again = api_as(tax.staff).post(f"{API}/own-payments/", {**data, "amount_fen": 321_50}, format="json")
    assert again.status_code == 201 and again.json()["id"] == deduction.pk
    assert tax.balance(person.wallet_id) == 2_000_00 - 321_50
    refused = api_as(tax.other_staff).post(f"{API}/own-payments/", {**data, "amount_fen": 1_00}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "access_denied"
    report = api_as(tax.staff).get(f"{API}/entry-report/").json()
    assert report["amount_fen"] == 321_50 and report["rows"][0]["tax_type_name"] == "个人所得税"


def test_the_deductions_the_filters_select_as_csv_masked_scoped_and_formula_safe(tax, people):
    person = tax.taxpayer(personal=True, name="李四光")
    company = tax.taxpayer(name="=HYPERLINK(\"http://x.example\")有限公司")
    poor = tax.taxpayer(balance_fen=1_00)
    serials = {}
    for payer, amount_fen in ((person, 1_234_56), (company, 10_00), (poor, 50_00)):
        agreement = tax.signed_and_verified(payer)
        message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=amount_fen)
        serials[payer.name] = message.item.tra_no
        services.deduct_real_time(message=message, now=timezone.now())

    client = logged_in(tax.staff)
    response = client.get(reverse("tax:deduction-csv"), {"result_code": ResultCode.SUCCESS})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="tax-deductions-\d{8}\.csv"', response["Content-Disposition"])
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")  # spreadsheet programs read the Chinese headers right
    header, *rows = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    assert header[:2] == ["委托日期 entrust date", "交易流水号 serial"]
    by_serial = {row[1]: dict(zip(header, row)) for row in rows}
    assert set(by_serial) == {serials[person.name], serials[company.name]}  # the refused one is filtered out
    mine = by_serial[serials[person.name]]
    assert mine["金额(元) amount"] == "1234.56" and mine["处理结果 result"] == ResultCode.SUCCESS
    assert mine["纳税人 taxpayer"] == mask_name("李四光") and mine["纳税人识别号 taxpayer ID"] == mask_resident_id(
        person.taxpayer_id)
    assert mine["付款钱包 payer wallet"] == mask_wallet_id(person.wallet_id) and person.wallet_id not in text
    assert mine["转账 transfer"] == str(TaxDeduction.objects.get(tra_no=serials[person.name]).transfer_id)
    # A name from the tax system that a spreadsheet would run as a formula is written as text.
    assert by_serial[serials[company.name]]["纳税人 taxpayer"] == "'" + company.name

    everything = b"".join(client.get(reverse("tax:deduction-csv")).streaming_content).decode("utf-8")
    assert serials[poor.name] in everything
    other = b"".join(logged_in(tax.other_staff).get(reverse("tax:deduction-csv")).streaming_content).decode("utf-8")
    assert len(other.strip().splitlines()) == 1  # another tax authority's staff: the header alone
    assert logged_in(people["auditor"]).get(reverse("tax:deduction-csv")).status_code == 200
    assert logged_in(people["employer"]).get(reverse("tax:deduction-csv")).status_code == 403
    page = client.get(reverse("tax:deduction-list"), {"result_code": ResultCode.SUCCESS}).content.decode()
    assert f'{reverse("tax:deduction-csv")}?result_code={ResultCode.SUCCESS}' in page  # the page links its CSV
    # The same file from the API, with the list's filters; a bad filter is a 400 that names it.
    api = api_as(tax.staff)
    from_api = api.get(f"{API}/deductions/csv/", {"result_code": ResultCode.SUCCESS})
    assert from_api.status_code == 200 and from_api["Content-Type"] == "text/csv; charset=utf-8"
    assert b"".join(from_api.streaming_content).decode("utf-8") == text
    refused = api.get(f"{API}/deductions/csv/", {"date_from": "2026-13-01"})
    assert refused.status_code == 400 and "date_from" in refused.json()["details"]
    assert api_as(people["employer"]).get(f"{API}/deductions/csv/").status_code == 403


def _pdf_text(content: bytes) -> str:
    from pypdf import PdfReader

    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_a_persons_history_reads_in_words_and_shows_no_wallet_whole(tax):
    # The trace keeps a wallet id whole; the agreement and deduction histories show it masked, as the trace API does.
    person = tax.taxpayer(personal=True, name="张三丰", balance_fen=5_000_00)
    agreement = tax.signed_and_verified(person)
    message = real_time(tax, payer=person, protocol_no=agreement.protocol_no, amount_fen=1_234_56)
    assert services.deduct_real_time(message=message, now=timezone.now()).result == ResultCode.SUCCESS
    deduction = TaxDeduction.objects.get(tra_no=message.item.tra_no)
    for url in (f"{API}/agreements/{agreement.pk}/", f"{API}/deductions/{deduction.pk}/"):
        response = api_as(tax.staff).get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert person.wallet_id not in response.content.decode() and person.taxpayer_id not in response.content.decode()
    history = response.json()["history"]
    debiting = next(e for e in history if e["kind"] == "tax.deduction.debiting")
    assert debiting["data"]["payer"] == mask_wallet_id(person.wallet_id)
    assert {"key": "payer", "label": "付款钱包", "value": mask_wallet_id(person.wallet_id)} in debiting["details"]
    client = logged_in(tax.staff)
    for url in (reverse("tax:agreement-detail", args=[agreement.pk]), reverse("tax:deduction-detail", args=[deduction.pk])):
        html = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
        assert person.wallet_id not in html and person.taxpayer_id not in html
    assert f'<span class="muted" title="payer">付款钱包</span> <span class="mono">{mask_wallet_id(person.wallet_id)}</span>' in html
    assert '<span class="muted" title="result">结果</span> <span class="mono">90000</span>' in html


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_a_day_out_of_range_is_refused_not_a_server_error(tax, day):
    """Every date the tax and social-insurance pages and APIs take is a day of 2000-2100
    (treasury.business_days): a day beyond has no next midnight or no UTC start, and was a 500."""
    page, api = logged_in(tax.staff), api_as(tax.staff)
    page.raise_request_exception = api.raise_request_exception = False
    answers = {
        "entry report": page.get(reverse("tax:entry-report"), {"day": day}),
        "entry report csv": page.get(reverse("tax:entry-report-csv"), {"day": day}),
        "deductions": page.get(reverse("tax:deduction-list"), {"date_from": day, "date_to": day}),
        "reversals": page.get(reverse("tax:reversal-list"), {"date_from": day}),
        "runs": page.get(reverse("tax:reconciliation"), {"check_date": day}),
        "run now": page.post(reverse("tax:reconciliation-run-now"), {"check_date": day}),
        "social runs": page.get(reverse("social:reconciliation"), {"check_date": day}),
        "social run now": page.post(reverse("social:reconciliation-run-now"), {"check_date": day}),
        "api entry report": api.get(f"{API}/entry-report/", {"day": day}),
        "api deductions": api.get(f"{API}/deductions/", {"date_from": day}),
        "api run": api.post(f"{API}/reconciliation/runs/", {"check_date": day}, format="json"),
        "api runs": api.get(f"{API}/reconciliation/runs/", {"check_date": day}),
        "api social run": api.post("/api/v1/social/reconciliation/runs/", {"check_date": day}, format="json"),
    }
    assert {what: r.status_code for what, r in answers.items() if r.status_code >= 500} == {}


def test_a_day_still_to_come_is_not_reconciled(tax):
    """A future check date has nothing to reconcile: the run would wait for the tax system's check for ever."""
    from tax.reconciliation.models import ReconciliationRun

    tomorrow = (timezone.localdate() + timezone.timedelta(days=1)).isoformat()
    page, api = logged_in(tax.staff), api_as(tax.staff)
    for response in (page.post(reverse("tax:reconciliation-run-now"), {"check_date": tomorrow}, follow=True),
                     page.post(reverse("social:reconciliation-run-now"), {"check_date": tomorrow}, follow=True)):
        assert response.status_code == 200 and "尚未到来的日期不能对账" in response.content.decode()
    for url in (f"{API}/reconciliation/runs/", "/api/v1/social/reconciliation/runs/"):
        response = api.post(url, {"check_date": tomorrow}, format="json")
        assert response.status_code == 400 and "check_date" in response.json()["details"], url
    assert not ReconciliationRun.objects.exists()
