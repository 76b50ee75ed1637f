"""Trace pages and API: what each user sees, what others get (404), and verification for auditors."""
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from treasury import keys
from treasury.trace.models import TraceEvent
from treasury.trace.services import checkpoint_body, make_checkpoint

from .conftest import T0

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_user(client):
    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture
def api_as():
    def login(user):
        api = APIClient()
        api.force_authenticate(user)
        return api

    return login


# --- pages -----------------------------------------------------------------------------------------


def test_transfer_trace_page_shows_timeline_in_shanghai_time_masked(world, as_user):
    page = as_user(world.user_a).get(f"/trace/transfer/{world.transfer_a.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    html = page.content.decode()
    assert "2026-03-02<br>" in html and ">09:30:01<" in html  # created at 01:30:01 UTC
    assert "¥12,345.67" in html
    assert "1010********0003" in html and "张*丰" in html
    assert "张三丰" not in html
    assert ">1010000000000003<" not in html  # full wallet ids appear only in link targets
    assert html.count('data-chain="ok"') == 4
    assert TraceEvent.objects.get(stream_key="BATCH-A", seq=4).hash[:12] in html


@pytest.mark.parametrize("url", ["/trace/transfer/{b}/", "/trace/document/BATCH-B/", "/trace/batch/BATCH-B/",
                                 "/trace/document/voucher:77/"])
def test_other_organizations_trace_is_404(world, as_user, url):
    client = as_user(world.user_a)
    assert client.get(url.format(b=world.transfer_b.pk)).status_code == 404


def test_wallet_page_and_scoping(world, as_user):
    client = as_user(world.user_a)
    assert client.get(f"/trace/wallet/{world.staff_wallet.pk}/").status_code == 200
    assert as_user(world.nobody).get(f"/trace/wallet/{world.staff_wallet.pk}/").status_code == 404
    assert client.get("/trace/wallet/999999/").status_code == 404


def test_no_link_or_page_shows_a_wallet_id_whole(world, as_user):
    # Pages show wallet ids masked and link to a wallet's trace by its row, so no id is in an address either.
    client = as_user(world.user_a)
    for url in (f"/trace/transfer/{world.transfer_a.pk}/", "/trace/document/BATCH-A/",
                f"/trace/wallet/{world.staff_wallet.pk}/", f"/trace/wallet/{world.wallet_a.pk}/"):
        html = client.get(url).content.decode()
        assert world.staff_wallet.wallet_id not in html and world.wallet_a.wallet_id not in html, url
    assert f'href="/trace/wallet/{world.staff_wallet.pk}/"' in client.get("/trace/document/BATCH-A/").content.decode()


def test_pages_need_login(world, client):
    response = client.get(f"/trace/transfer/{world.transfer_a.pk}/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_search_redirects_to_what_the_user_may_see(world, as_user):
    client = as_user(world.user_a)
    assert client.get("/trace/", {"q": "PAY-A-0001"})["Location"] == f"/trace/transfer/{world.transfer_a.pk}/"
    assert client.get("/trace/", {"q": "BATCH-A"})["Location"] == "/trace/document/BATCH-A/"
    assert client.get("/trace/", {"q": world.staff_wallet.wallet_id})["Location"] == (
        f"/trace/wallet/{world.staff_wallet.pk}/")
    not_found = client.get("/trace/", {"q": "PAY-B-0001"})
    assert not_found.status_code == 200 and b'data-testid="trace-not-found"' in not_found.content
    assert client.get("/trace/").status_code == 200


def test_document_page_marks_an_altered_event(world, as_user, tamper):
    tamper("UPDATE trace_traceevent SET actor = 'forger' WHERE stream_key = 'BATCH-A' AND seq = 3")
    html = as_user(world.auditor).get("/trace/document/BATCH-A/").content.decode()
    assert html.count('data-chain="altered"') == 1 and html.count('data-chain="ok"') == 5


def test_verify_page_is_for_auditors_and_admins(world, as_user, client):
    assert as_user(world.user_a).get("/trace/verify/").status_code == 403
    client.logout()
    page = as_user(world.auditor).get("/trace/verify/", {"run": "1"})
    assert page.status_code == 200 and b'data-testid="verification-result"' in page.content
    assert b"trace OK" in page.content
    client.logout()
    assert as_user(world.admin).get("/trace/verify/").status_code == 200


# --- API -------------------------------------------------------------------------------------------


def test_api_transfer_trace(world, api_as):
    data = api_as(world.user_a).get(f"/api/v1/trace/transfers/{world.transfer_a.pk}/").json()
    assert data["kind"] == "transfer" and data["intact"] is True
    assert [e["kind"] for e in data["events"]] == [
        "payroll.batch.approved", "transfer.created", "transfer.submitted", "transfer.settled"]
    event = data["events"][1]
    assert event["occurred_at"] == "2026-03-02T09:30:01+08:00"
    assert event["amount_fen"] == 1_234_567 and event["data"]["payee"] == "1010********0003"
    assert data["transfers"][0]["payee_wallet_id"] == "1010********0003"
    assert data["transfers"][0]["amount_yuan"] == "12345.67"


@pytest.mark.parametrize("url", ["/api/v1/trace/transfers/{b}/", "/api/v1/trace/documents/BATCH-B/",
                                 "/api/v1/trace/documents/voucher:77/", "/api/v1/trace/wallets/{w}/"])
def test_api_other_organizations_trace_is_404(world, api_as, url):
    from treasury.models import Wallet

    # A second wallet of org B that no transfer of org A touches.
    Wallet.objects.create(wallet_id="1010000000000004", wallet_type=Wallet.Type.CORPORATE, operator=world.operator,
                          holder_org=world.org_b, holder_name="乙单位")
    assert api_as(world.user_b).get("/api/v1/trace/wallets/1010000000000004/").status_code == 200
    response = api_as(world.user_a).get(url.format(b=world.transfer_b.pk, w="1010000000000004"))
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_api_wallet_and_document_traces(world, api_as):
    api = api_as(world.user_a)
    wallet = api.get(f"/api/v1/trace/wallets/{world.staff_wallet.wallet_id}/").json()
    assert wallet["key"] == "1010********0003" and [t["id"] for t in wallet["transfers"]] == [world.transfer_a.pk]
    document = api.get("/api/v1/trace/documents/BATCH-A/").json()
    assert document["transfer_total_fen"] == 1_284_567 and len(document["payees"]) == 2


def test_api_search(world, api_as):
    api = api_as(world.user_a)
    assert api.get("/api/v1/trace/search/", {"q": "PAY-A-0001"}).json() == {
        "kind": "transfer", "key": str(world.transfer_a.pk), "url": f"/api/v1/trace/transfers/{world.transfer_a.pk}/"}
    assert api.get("/api/v1/trace/search/", {"q": "PAY-B-0001"}).status_code == 404


def test_api_verify_is_for_auditors_and_admins_only(world, api_as, tamper):
    assert api_as(world.user_a).get("/api/v1/trace/verify/").status_code == 403
    assert APIClient().get("/api/v1/trace/verify/").status_code in (401, 403)
    ok = api_as(world.auditor).get("/api/v1/trace/verify/").json()
    assert ok["ok"] is True and ok["events"] == 9 and ok["problems"] == []
    tamper("DELETE FROM trace_traceevent WHERE stream_key = 'BATCH-B' AND seq = 2")
    bad = api_as(world.admin).get("/api/v1/trace/verify/").json()
    assert bad["ok"] is False and bad["problem_count"] == 1
    assert bad["problems"][0]["code"] == "events_missing" and bad["problems"][0]["stream_key"] == "BATCH-B"
    one = api_as(world.auditor).get("/api/v1/trace/verify/", {"stream": "BATCH-A"}).json()
    assert one["ok"] is True and one["streams"] == 1


def test_api_checkpoints_carry_a_signature_anyone_with_the_public_key_can_check(world, api_as):
    make_checkpoint(now=T0 + timedelta(minutes=10))
    api = api_as(world.auditor)
    (cp,) = api.get("/api/v1/trace/checkpoints/").json()["results"]
    key = api.get("/api/v1/trace/public-key/").json()
    assert key["key_id"] == cp["key_id"] == keys.key_id()
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from django.utils.dateparse import parse_datetime

    body = checkpoint_body(
        number=cp["number"], created_at=parse_datetime(cp["created_at"]), stream_count=cp["stream_count"],
        event_count=cp["event_count"], merkle_root=cp["merkle_root"], changed_count=cp["changed_count"],
        changed_root=cp["changed_root"], prev_body_hash=cp["prev_body_hash"], key_id=cp["key_id"],
    )
    assert keys.verify(body, cp["signature"], load_pem_public_key(key["public_key_pem"].encode()))
    assert api_as(world.user_a).get("/api/v1/trace/checkpoints/").status_code == 403


def test_api_schema_lists_trace_endpoints(world, api_as):
    schema = api_as(world.admin).get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    for path in ("/api/v1/trace/transfers/{transfer_id}/", "/api/v1/trace/verify/", "/api/v1/trace/documents/{ref}/"):
        assert path in schema


def test_event_data_with_an_items_key_and_nested_values_shows_as_json(world, as_user):
    # A template looping over `data.items` got the value of a key named "items" (an int) and failed with a 500.
    from django.db import transaction

    from treasury.trace.services import EventSpec, append_events

    with transaction.atomic():
        append_events(stream_key="BATCH-A", now=T0 + timedelta(seconds=5), events=[EventSpec(
            kind="payroll.batch.paid", subject_type="payroll.batch", subject_id="1", actor="system",
            source_ref="payroll.batch:1", data={"items": 3, "signed": True, "conditions": {"purposes": ["工资"]},
                                                "wallet_balance_fen": 500_000_00})])
    page = as_user(world.auditor).get("/trace/document/BATCH-A/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    html = page.content.decode()
    # Each key in words with the stored key as its title (a key nobody names as written), the value in words.
    assert '<span class="muted" title="items">Items</span> <span class="mono">3</span>' in html
    assert '<span class="muted" title="signed">signed</span> <span class="mono">yes</span>' in html
    assert 'title="conditions">Smart-contract conditions</span> <span class="mono">{&quot;purposes&quot;: [&quot;工资&quot;]}' in html
    assert 'title="wallet_balance_fen">Wallet balance</span> <span class="mono">¥500,000.00</span>' in html


def test_a_transfer_events_partitioned_stream_links_to_its_batch(world, as_user):
    # The core writes a transfer's events to "<batch>#<partition>"; there is no document of that name.
    from django.db import transaction

    from treasury.trace.services import EventSpec, append_events

    t = world.transfer_a
    with transaction.atomic():
        append_events(stream_key="BATCH-A#0", now=T0 + timedelta(seconds=6), events=[EventSpec(
            kind="transfer.receipt_issued", subject_type="treasury.transfer", subject_id=str(t.pk), actor="system",
            amount_fen=t.amount_fen, source_ref=t.source_ref)])
    html = as_user(world.user_a).get(f"/trace/transfer/{t.pk}/").content.decode()
    assert 'href="/trace/document/BATCH-A/">BATCH-A#0</a>' in html
    assert as_user(world.user_a).get("/trace/document/BATCH-A/").status_code == 200


def test_a_document_named_inside_a_batch_opens_for_whoever_ran_the_batch(world, as_user):
    # A tax package's number is the source ref of the package's own events, in the stream of the batch its
    # transfers belong to. Numbers repeat (another authority, another day): only the user's batches count.
    from django.db import transaction

    from treasury.trace.services import EventSpec, append_events

    def package_event(stream):
        with transaction.atomic():
            append_events(stream_key=stream, now=T0 + timedelta(seconds=7), events=[EventSpec(
                kind="tax.package.done", subject_type="tax.deductionpackage", subject_id=stream, actor="system",
                source_ref="00000001", data={"stream": stream})])

    package_event("BATCH-A")
    package_event("BATCH-B")
    page = as_user(world.user_a).get("/trace/document/00000001/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'title="stream">stream</span> <span class="mono">BATCH-A<' in html and "BATCH-B<" not in html
    assert as_user(world.nobody).get("/trace/document/00000001/").status_code == 404


def test_an_event_whose_data_was_replaced_by_a_list_shows_altered_on_the_page_and_in_the_api(world, as_user, api_as,
                                                                                           tamper):
    tamper("""UPDATE trace_traceevent SET data = '["11010519491231002X"]' WHERE stream_key = 'BATCH-A' AND seq = 1""")
    html = as_user(world.auditor).get("/trace/document/BATCH-A/").content.decode()
    assert html.count('data-chain="altered"') == 1 and "11010519491231002X" not in html
    data = api_as(world.auditor).get("/api/v1/trace/documents/BATCH-A/").json()
    altered = [e for e in data["events"] if e["chain_status"] == "altered"]
    assert len(altered) == 1 and altered[0]["data"] == {"data": ["110***********002X"]} and data["intact"] is False


@pytest.mark.parametrize("query", ["²", "¹²", "PAY-A\x000001", "\x00"])
def test_search_for_odd_text_finds_nothing_and_fails_nothing(world, as_user, api_as, query):
    """A superscript digit is a digit to str.isdigit() and not to int(); PostgreSQL refuses a NUL in a query."""
    page = as_user(world.auditor).get("/trace/", {"q": query})
    assert page.status_code == 200 and b'data-testid="trace-not-found"' in page.content
    response = api_as(world.user_a).get("/api/v1/trace/search/", {"q": query})
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_a_document_or_stream_named_with_a_nul_is_not_found(world, as_user, api_as):
    assert as_user(world.auditor).get("/trace/document/BATCH-A%00/").status_code == 404
    assert api_as(world.user_a).get("/api/v1/trace/documents/BATCH-A%00/").json()["code"] == "not_found"
    response = api_as(world.auditor).get("/api/v1/trace/verify/", {"stream": "BATCH-A\x00"})
    assert response.status_code == 400 and response.json()["code"] == "invalid"
