"""A multipart body larger than UPLOAD_MAX_BYTES is refused from its Content-Length, before sign-in and before
any of it is read; one within the cap reaches the form, which applies its own limit."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse

pytestmark = pytest.mark.django_db


@override_settings(UPLOAD_MAX_BYTES=10_000)
def test_a_body_past_the_cap_is_refused_before_it_is_read():
    client = Client()
    big = SimpleUploadedFile("huge.pdf", b"%PDF-" + b"0" * 20_000, content_type="application/pdf")
    response = client.post(reverse("login"), {"username": "nobody", "password": "x", "file": big})
    assert response.status_code == 400

    small = SimpleUploadedFile("small.pdf", b"%PDF-" + b"0" * 100, content_type="application/pdf")
    response = client.post(reverse("login"), {"username": "nobody", "password": "x", "file": small})
    assert response.status_code == 200  # the sign-in page answered: the form was read
