"""The sign-in page says why it refused, next to the field it is about, and keeps the username typed."""
import pytest
from django.test import Client

from tests import factories as f


@pytest.mark.django_db
def test_a_username_the_form_refuses_is_said_under_the_field():
    # Only spaces (the browser's `required` lets them through): the page came back with nothing said, as if the
    # click had not reached it.
    response = Client().post("/login/", {"username": "   ", "password": f.PASSWORD})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="error-username"' in html
    field = html.index('id="id_username"')
    assert field < html.index('data-testid="error-username"') < html.index('id="id_password"')


@pytest.mark.django_db
def test_a_wrong_password_says_so_in_chinese_and_keeps_the_username():
    user = f.make_user(role="tax_staff")
    html = Client().post("/login/", {"username": user.username, "password": "not-it"}).content.decode()
    assert f'value="{user.username}"' in html
    assert "请输入一个正确的" in html  # Django's catalog: the page's language is Chinese unless the user picks English
