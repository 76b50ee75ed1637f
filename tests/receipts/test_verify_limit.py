"""The public receipt check (API) answers at most 60 requests a minute from one address; with CACHE_URL the count
is kept in Redis, where every process of the service reads and adds to the same one."""
import pytest
import redis
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.workers import broker_url  # noqa: F401 (fixture: the integration Redis)

URL = "/api/v1/receipts/verify/"


def _check(client):
    return client.post(URL, {"file": SimpleUploadedFile("r.pdf", b"%PDF-1.4 nonsense")}, format="multipart")


def _sixty_then_refused():
    cache.clear()
    client, neighbour = APIClient(REMOTE_ADDR="192.0.2.10"), APIClient(REMOTE_ADDR="192.0.2.11")
    assert all(_check(client).status_code == 200 for _ in range(60))  # each answered: not a receipt
    refused = _check(client)
    assert refused.status_code == 429 and refused.json()["code"] == "throttled" and "Retry-After" in refused
    assert _check(neighbour).status_code == 200  # another address counts on its own


@pytest.mark.django_db
def test_sixty_checks_a_minute_from_one_address():
    _sixty_then_refused()


@pytest.mark.django_db
@pytest.mark.integration
def test_with_a_cache_url_the_count_lives_in_redis(settings, broker_url):  # noqa: F811
    cache_url = broker_url.rsplit("/", 1)[0] + "/15"  # beside the broker's database: clearing it leaves the queues
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": cache_url}}
    _sixty_then_refused()
    keys = redis.Redis.from_url(cache_url).keys("*receipt_verify_192.0.2.10*")
    assert len(keys) == 1  # where another process of the service finds it
    cache.clear()


@pytest.mark.django_db
def test_the_page_counts_with_the_api():
    """The verification page reads PDFs as the API does: the same sixty a minute from one address, counted
    together, then a page that says so (429, Retry-After) without reading the file."""
    from django.test import Client

    cache.clear()
    page, api = Client(REMOTE_ADDR="192.0.2.20"), APIClient(REMOTE_ADDR="192.0.2.20")
    assert all(_check(api).status_code == 200 for _ in range(30))
    def upload():
        return {"file": SimpleUploadedFile("r.pdf", b"%PDF-1.4 nonsense")}

    assert all(page.post("/receipts/verify/", upload()).status_code == 422 for _ in range(30))
    refused = page.post("/receipts/verify/", upload())
    assert refused.status_code == 429 and "Retry-After" in refused
    assert "too many checks".encode() in refused.content and b"not_a_pdf" not in refused.content
    assert _check(api).status_code == 429
    assert page.get("/receipts/verify/").status_code == 200  # the form itself is always there
    assert Client(REMOTE_ADDR="192.0.2.21").post("/receipts/verify/", upload()).status_code == 422
    cache.clear()
