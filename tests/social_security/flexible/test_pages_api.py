"""Pages and API: an individual sees only their own records (another person's by id is a 404), tax staff see
their authority's enrolments with arrears, the statement PDF carries the months and totals."""
import datetime as dt
import io
from unittest import mock

import pypdf
import pytest
from django.urls import reverse

from social_security.flexible import services
from social_security.flexible.models import Enrolment, Payment, PaymentState
from tests import factories as f
from tests.social_security.flexible.conftest import NOW
from treasury.access import roles


@pytest.fixture(autouse=True)
def _frozen_now():
    """Pages and the API read the clock: pin it to NOW (September overdue by 26 days)."""
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        yield


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF")
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_an_individual_enrols_on_the_page_and_sees_the_overdue_month_with_its_late_fee(client, flex):
    who = flex.individual(name="李四")
    client.force_login(who.user)
    page = client.get(reverse("social_flexible:mine"))
    assert page.status_code == 200 and 'data-testid="enrol-form"' in page.content.decode()
    assert "100% · ¥7,800.00" in page.content.decode()
    response = client.post(reverse("social_flexible:enrol"), {
        "region": "370100", "base_level": "100", "frequency": "monthly", "wallet_id": who.wallet_id,
        "start_month": "2026-09"})
    assert response.status_code == 302
    html = client.get(reverse("social_flexible:mine")).content.decode()
    assert 'data-month="2026-09" data-state="due" data-overdue="1"' in html
    assert "¥29.41" in html  # 26 days late: 226,200 x 0.0005 x 26 = 2,940.6 -> 2,941 fen
    assert "¥2,291.41" in html


def test_a_refused_enrolment_shows_the_form_as_it_was_at_the_page_own_address(client, flex):
    """The enrolment form shown again with its error keeps what the levels cost ("100% · ¥7,800.00", as on the
    first showing) and lives at the page's own address: its language switch led to the enrol address, which takes
    only a POST (a blank 405)."""
    from tests.clients import assert_links_lead_to

    who = flex.individual(name="李四")
    client.force_login(who.user)
    response = client.post(reverse("social_flexible:enrol"), {
        "region": "370100", "base_level": "100", "frequency": "monthly", "wallet_id": who.wallet_id,
        "start_month": "2026-9x"})
    assert response.status_code == 400 and list(response.context["form"].errors) == ["start_month"]
    html = response.content.decode()
    assert "100% · ¥7,800.00" in html and 'value="2026-9x"' in html
    assert_links_lead_to(client, response, reverse("social_flexible:mine"))


def test_paying_on_the_page_shows_the_late_fee_first_then_pays(client, flex):
    who = flex.individual(balance_fen=10_000_00)
    enrolment = flex.enrol(who)
    sep = enrolment.periods.get(month=dt.date(2026, 9, 1))
    client.force_login(who.user)
    confirm = client.get(reverse("social_flexible:pay"), {"through": sep.pk}).content.decode()
    assert 'data-testid="quote-late-fees">¥29.41' in confirm and 'data-testid="quote-total">¥2,291.41' in confirm
    assert not Payment.objects.exists()
    response = client.post(reverse("social_flexible:pay"), {"period_ids": [sep.pk]})
    assert response.status_code == 302 and response["Location"] == reverse("social_flexible:payments")
    payment = Payment.objects.get()
    assert payment.state == PaymentState.PAID and payment.amount_fen == 229141
    history = client.get(reverse("social_flexible:payments")).content.decode()
    assert f'data-payment="{payment.pk}" data-state="paid"' in history
    # The core's signed receipt of the transfer is linked and downloads for the person.
    receipt = payment.transfer.receipt
    assert f'href="{reverse("receipts:download", args=[receipt.number])}"' in history
    download = client.get(reverse("receipts:download", args=[receipt.number]))
    assert download.status_code == 200 and b"".join(download.streaming_content).startswith(b"%PDF")


def test_the_confirmation_page_shows_the_class_limit_before_anything_is_sent(client, flex):
    who = flex.individual(wallet_class=4, balance_fen=9_000_00)
    enrolment = flex.enrol(who)
    nov = enrolment.periods.get(month=dt.date(2026, 11, 1))
    client.force_login(who.user)
    confirm = client.get(reverse("social_flexible:pay"), {"through": nov.pk}).content.decode()
    assert 'data-testid="limit-problem"' in confirm and 'data-testid="pay-form"' not in confirm
    response = client.post(reverse("social_flexible:pay"), {"period_ids": list(
        enrolment.periods.values_list("pk", flat=True))})
    assert response.status_code == 302 and not Payment.objects.exists()


def test_an_individual_never_sees_another_persons_records(client, flex):
    owner, other = flex.individual(balance_fen=10_000_00), flex.individual()
    enrolment = flex.enrol(owner)
    sep = enrolment.periods.order_by("month").first()
    payment = services.pay(user=owner.user, enrolment_id=enrolment.pk, period_ids=[sep.pk], now=NOW)
    flex.enrol(other)
    client.force_login(other.user)
    for url in (f"/api/v1/social/flexible/enrolments/{enrolment.pk}/",
                f"/api/v1/social/flexible/enrolments/{enrolment.pk}/periods/",
                f"/api/v1/social/flexible/enrolments/{enrolment.pk}/statement/",
                f"/api/v1/social/flexible/payments/{payment.pk}/"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["code"] == "not_found"
    response = client.post(f"/api/v1/social/flexible/enrolments/{enrolment.pk}/pay/",
                           {"period_ids": [sep.pk]}, content_type="application/json")
    assert response.status_code == 404
    assert [e["id"] for e in client.get("/api/v1/social/flexible/enrolments/").json()["results"]] != [enrolment.pk]
    assert client.get("/api/v1/social/flexible/payments/").json()["results"] == []
    client.force_login(owner.user)
    mine = client.get(f"/api/v1/social/flexible/payments/{payment.pk}/").json()
    assert mine["payment_no"] == f"F{payment.pk:011d}" and mine["notified_at"] and mine["reconciled_at"] is None
    client.force_login(other.user)
    # The transfer and its receipt are not theirs either.
    assert client.get(f"/transfers/{payment.transfer_id}/").status_code == 404
    assert client.get(reverse("social_flexible:staff-detail", args=[enrolment.pk])).status_code == 403
    mine = client.get(reverse("social_flexible:mine")).content.decode()
    assert f'data-period="{sep.pk}"' not in mine
    # The owner sees their transfer.
    client.force_login(owner.user)
    assert client.get(f"/transfers/{payment.transfer_id}/").status_code == 200


def test_the_api_enrols_prices_and_pays(client, flex):
    who = flex.individual(balance_fen=10_000_00)
    client.force_login(who.user)
    levels = client.get("/api/v1/social/flexible/levels/", {"region": "370100"}).json()
    assert {"level": 60, "base_fen": 468000, "note": ""} in levels
    created = client.post("/api/v1/social/flexible/enrolments/", {
        "region": "370100", "base_level": 100, "frequency": "monthly", "wallet_id": who.wallet_id,
        "start_month": "2026-09-01"}, content_type="application/json")
    assert created.status_code == 201, created.content
    enrolment_id = created.json()["id"]
    again = client.post("/api/v1/social/flexible/enrolments/", {
        "region": "370100", "base_level": 100, "frequency": "monthly", "wallet_id": who.wallet_id,
        "start_month": "2026-09-01"}, content_type="application/json")
    assert again.status_code == 409 and again.json()["code"] == "already_enrolled"
    periods = client.get(f"/api/v1/social/flexible/enrolments/{enrolment_id}/periods/").json()
    assert [(p["month"], p["overdue_days"], p["late_fee_today_fen"]) for p in periods] == [
        ("2026-09", 26, 2941), ("2026-10", 0, 0), ("2026-11", 0, 0)]
    ids = [p["id"] for p in periods[:2]]
    quote = client.post(f"/api/v1/social/flexible/enrolments/{enrolment_id}/quote/", {"period_ids": ids},
                        content_type="application/json").json()
    assert (quote["contributions_fen"], quote["late_fee_fen"], quote["amount_fen"]) == (452400, 2941, 455341)
    out_of_order = client.post(f"/api/v1/social/flexible/enrolments/{enrolment_id}/pay/",
                               {"period_ids": [periods[2]["id"]]}, content_type="application/json")
    assert out_of_order.status_code == 400 and out_of_order.json()["code"] == "not_in_order"
    paid = client.post(f"/api/v1/social/flexible/enrolments/{enrolment_id}/pay/", {"period_ids": ids},
                       content_type="application/json")
    assert paid.status_code == 201
    body = paid.json()
    assert body["state"] == "paid" and body["months"] == ["2026-09", "2026-10"] and body["amount_fen"] == 455341
    changed = client.post(f"/api/v1/social/flexible/enrolments/{enrolment_id}/change/",
                          {"base_level": 60, "frequency": "monthly"}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["base_level"] == 60
    assert Enrolment.objects.get().periods.get(month=dt.date(2026, 11, 1)).total_fen == 135720


def test_staff_see_their_authoritys_enrolments_with_arrears(client, flex):
    a, b = flex.individual(name="赵六"), flex.individual(name="钱七")
    enrolment = flex.enrol(a)
    flex.enrol(b, start=dt.date(2026, 11, 1))
    client.force_login(flex.staff)
    html = client.get(reverse("social_flexible:staff-list")).content.decode()
    assert 'data-testid="total-count">2<' in html
    assert 'data-testid="total-overdue-months">1<' in html and 'data-testid="total-arrears">¥2,262.00' in html
    assert "赵六" not in html and "赵*" in html  # names masked
    arrears_only = client.get(reverse("social_flexible:staff-list"), {"arrears": "on"}).content.decode()
    assert f'data-enrolment="{enrolment.pk}"' in arrears_only and arrears_only.count("data-enrolment=") == 1
    rows = client.get("/api/v1/social/flexible/enrolments/", {"arrears": "true"}).json()["results"]
    assert [(r["id"], r["overdue_months"], r["arrears_fen"]) for r in rows] == [(enrolment.pk, 1, 226200)]
    assert client.get(reverse("social_flexible:staff-detail", args=[enrolment.pk])).status_code == 200
    # Staff read; they do not pay for someone.
    sep = enrolment.periods.order_by("month").first()
    response = client.post(f"/api/v1/social/flexible/enrolments/{enrolment.pk}/pay/", {"period_ids": [sep.pk]},
                           content_type="application/json")
    assert response.status_code == 403 and response.json()["code"] == "individual_required"
    # Another authority's staff see none of them.
    client.force_login(flex.other_staff)
    assert client.get(reverse("social_flexible:staff-detail", args=[enrolment.pk])).status_code == 404
    assert client.get(f"/api/v1/social/flexible/enrolments/{enrolment.pk}/").status_code == 404
    assert client.get("/api/v1/social/flexible/enrolments/").json()["results"] == []
    # Other roles get 403.
    client.force_login(f.make_user(role=roles.EMPLOYER_OPERATOR))
    assert client.get(reverse("social_flexible:staff-list")).status_code == 403
    assert client.get("/api/v1/social/flexible/enrolments/").status_code == 403


def test_the_statement_pdf_lists_the_months_bases_amounts_late_fees_and_totals(client, flex):
    who = flex.individual(name="孙八", balance_fen=10_000_00)
    enrolment = flex.enrol(who)
    sep = enrolment.periods.order_by("month").first()
    services.pay(user=who.user, enrolment_id=enrolment.pk, period_ids=[sep.pk], now=NOW)
    client.force_login(who.user)
    response = client.get(reverse("social_flexible:statement"))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = pdf_text(response.content)
    assert "孙八" in text and who.person.resident_id not in text
    assert who.person.resident_id[:3] in text and who.person.resident_id[-4:] in text  # masked, not absent
    for expected in ("2026-09", "2026-10", "2026-11", "7800.00", "1560.00", "624.00", "702.00", "29.41",
                     "2291.41", "2026-11-26", "¥2,262.00", "¥29.41", "¥2,291.41", "2 / ¥4,524.00"):
        assert expected in text, expected
    # The API gives the same document; another person gets a 404.
    api = client.get(f"/api/v1/social/flexible/enrolments/{enrolment.pk}/statement/")
    assert api.status_code == 200 and "2026-09" in pdf_text(api.content)


@pytest.mark.django_db
def test_the_schema_documents_the_flexible_api(client):
    client.force_login(f.make_user(role="admin"))
    schema = client.get("/api/schema/").content.decode()
    for path in ("/api/v1/social/flexible/enrolments/", "/api/v1/social/flexible/enrolments/{id}/pay/",
                 "/api/v1/social/flexible/payments/", "/api/v1/social/flexible/levels/"):
        assert path in schema


def test_an_individual_without_an_organization_uses_the_common_pages_for_their_own_money(client, flex):
    owner, other = flex.individual(balance_fen=10_000_00), flex.individual(balance_fen=10_000_00)
    for who in (owner, other):
        enrolment = flex.enrol(who)
        services.pay(user=who.user, enrolment_id=enrolment.pk,
                     period_ids=[enrolment.periods.order_by("month").first().pk], now=NOW)
    mine, theirs = (Payment.objects.get(enrolment__person=who.person) for who in (owner, other))
    client.force_login(owner.user)
    assert client.get("/").status_code == 200
    listing = client.get("/transfers/").content.decode()
    assert f'href="/transfers/{mine.transfer_id}/"' in listing and f'href="/transfers/{theirs.transfer_id}/"' not in listing
    ids = [row["id"] for row in client.get("/api/v1/transfers/").json()["results"]]
    assert ids == [mine.transfer_id]
    assert client.get(reverse("receipts:download", args=[theirs.transfer.receipt.number])).status_code == 404


def test_a_user_with_the_role_but_no_person_is_refused(client, flex):
    from django.contrib.auth.models import Group

    user = f.make_user(role=None)
    user.groups.add(Group.objects.get_or_create(name=roles.INDIVIDUAL)[0])
    client.force_login(user)
    assert client.get(reverse("social_flexible:mine")).status_code == 403
    response = client.post("/api/v1/social/flexible/enrolments/", {
        "region": "370100", "base_level": 100, "frequency": "monthly", "wallet_id": "3000000000000001",
        "start_month": "2026-09-01"}, content_type="application/json")
    assert response.status_code == 403 and response.json()["code"] == "individual_required"
    assert client.get("/api/v1/social/flexible/enrolments/").json()["results"] == []


@pytest.mark.django_db
def test_the_individual_role_is_a_group_created_by_migration():
    from django.contrib.auth.models import Group

    assert Group.objects.filter(name=roles.INDIVIDUAL).exists()
    assert roles.INDIVIDUAL in roles.ALL_ROLES and roles.ROLE_LABELS[roles.INDIVIDUAL]


def test_a_long_history_runs_over_several_pages_with_every_month(flex):
    from social_security.flexible.models import Period
    from social_security.flexible.statement import statement_pdf

    enrolment = flex.enrol(flex.individual(), start=dt.date(2026, 11, 1))
    month = dt.date(2020, 1, 1)
    rows = []
    for _ in range(70):  # months made directly: the sample city's rules only cover 2025-2026
        rows.append(Period(enrolment=enrolment, month=month, base_level=100, base_fen=700000, pension_fen=140000,
                           pension_account_fen=56000, medical_fen=63000, total_fen=203000,
                           due_date=services.due_date_for(month)))
        month = services.add_months(month, 1)
    Period.objects.bulk_create(rows)
    reader = pypdf.PdfReader(io.BytesIO(statement_pdf(enrolment=enrolment, now=NOW)))
    assert len(reader.pages) >= 2
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert all(f"{p.month:%Y-%m}" in text for p in rows)
    assert "71 / ¥" in text  # 70 made here + November 2026, none paid
    assert reader.pages[1].extract_text().count("Month Level Base") == 1  # the column headings again


@pytest.mark.django_db
def test_an_administrator_links_a_user_to_a_person_on_the_user_page(client):
    admin_user = f.make_user(role="admin", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    user = f.make_user(role=None)
    page = client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    assert 'name="personal_account-TOTAL_FORMS"' in page  # the inline's management form


def test_opening_the_pages_writes_no_months(client, flex):
    """A read writes nothing: a month that became owed shows once the nightly task (or a payment) made it."""
    from social_security.flexible.models import Period

    who = flex.individual()
    enrolment = flex.enrol(who, start=dt.date(2026, 11, 1))
    later = dt.datetime(2026, 12, 2, 10, tzinfo=NOW.tzinfo)
    with mock.patch("django.utils.timezone.now", return_value=later):
        client.force_login(who.user)  # then: a session idle since today would have ended by December
        for name in ("social_flexible:mine", "social_flexible:payments"):
            assert client.get(reverse(name)).status_code == 200
        assert client.get(f"/api/v1/social/flexible/enrolments/{enrolment.pk}/periods/").status_code == 200
        assert list(Period.objects.values_list("month", flat=True)) == [dt.date(2026, 11, 1)]
        services.make_all_periods(now=later)  # the nightly task
        html = client.get(reverse("social_flexible:mine")).content.decode()
    assert 'data-month="2026-12"' in html
