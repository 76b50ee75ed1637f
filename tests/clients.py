"""Test clients logged in as a user: pages (session login) and the REST API (forced authentication)."""
from django.test import Client
from rest_framework.test import APIClient


def logged_in(user, **kwargs) -> Client:
    """A page client logged in as `user`; kwargs go to Client (e.g. enforce_csrf_checks=True)."""
    client = Client(**kwargs)
    client.force_login(user)
    return client


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def assert_links_lead_to(client, response, url: str) -> None:
    """A page rendered in answer to a POST (a form shown again with its errors): its relative links resolve
    against `url`, the language switch returns there, and that address opens (the POST's own may take no GET)."""
    html = response.content.decode()
    assert f'<base href="{url}">' in html
    assert f'name="next" value="{url}"' in html
    assert client.get(url).status_code == 200
