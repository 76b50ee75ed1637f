"""A declaration's actions through the API as people outside the declaring employer meet them: another employer
gets 404 (it cannot see the declaration), the tax authority's staff, who read it, get 403 coded
`other_organization` (it was coded `not_found`, about a declaration the caller had just read), and nothing moves."""
from social_security.models import Declaration
from social_security.models import DeclarationState as S
from tests import factories as f
from tests.clients import api_as
from tests.social_security.test_declarations import prepare
from treasury.access import roles


def test_outsiders_cannot_act_on_a_declaration_and_are_told_so_plainly(world):
    declaration = prepare(world)
    url = f"/api/v1/social/declarations/{declaration.pk}"
    staff = api_as(world.tax_staff)
    assert staff.get(f"{url}/").status_code == 200
    other = api_as(f.make_user(role=roles.EMPLOYER_APPROVER, organization=world.other_employer))
    for action in ("cancel", "declare", "pay", "reopen"):
        response = staff.post(f"{url}/{action}/", {"reason": "x"}, format="json")
        assert response.status_code == 403, (action, response.content)
        assert response.json()["code"] == "other_organization"
        response = other.post(f"{url}/{action}/", {"reason": "x"}, format="json")
        assert response.status_code == 404 and response.json()["code"] == "not_found", action
    assert Declaration.objects.get(pk=declaration.pk).state == S.DRAFT
