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
