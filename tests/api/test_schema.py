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
