import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from tests import factories as f


def test_schema_generates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--fail-on-warn", "--validate", "--file", str(target)],
        cwd=Path(settings.BASE_DIR), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    schema = yaml.safe_load(target.read_text())
    for path in ("/api/v1/transfers/", "/api/v1/transfers/{id}/", "/api/v1/wallets/", "/api/v1/me/",
                 "/api/v1/auth/token/"):
        assert path in schema["paths"], path
    assert "Error" in schema["components"]["schemas"]
    parameters = {p["name"] for p in schema["paths"]["/api/v1/transfers/"]["get"]["parameters"]}
    assert {"state", "created_date", "batch_ref", "limit", "offset"} <= parameters


@pytest.mark.django_db
def test_schema_and_docs_are_served_offline(client):
    client.force_login(f.make_user(role="auditor"))
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "drf_spectacular_sidecar/swagger-ui-dist" in html  # served by us, not a CDN
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def _is_error_body(response) -> bool:
    return response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "") \
        == "#/components/schemas/Error"


@pytest.mark.django_db
def test_every_operation_documents_the_errors_it_answers(client):
    # A client reads the schema to know what to handle: an operation that needs a signed-in caller answers 401
    # without one, an operation on one object answers 404 for one the caller may not see, both with the error body.
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    missing = []
    for path, method, operation in _operations(schema):
        responses = {str(code): body for code, body in operation["responses"].items()}
        anonymous = not operation.get("security") or {} in operation["security"]
        if not anonymous and not _is_error_body(responses.get("401", {})):
            missing.append((method, path, 401))
        if "{" in path and not _is_error_body(responses.get("404", {})):
            missing.append((method, path, 404))
    assert not missing, missing
    # What the schema says is what they answer.
    for path in ("/api/v1/receipts/", "/api/v1/social/declarations/", "/api/v1/trace/checkpoints/",
                 "/api/v1/trace/public-key/"):
        response = client.get(path)
        assert response.status_code == 401 and response.json()["code"] == "not_authenticated", path
    verify = schema["paths"]["/api/v1/receipts/verify/"]["post"]["responses"]
    verify = {str(code): body for code, body in verify.items()}
    assert _is_error_body(verify["400"]) and _is_error_body(verify["429"])  # 60 a minute per address
