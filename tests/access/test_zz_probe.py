import re
import pytest
from django.urls import URLResolver, get_resolver
from tests import factories as f

def _urls():
    out = []
    def walk(patterns, prefix):
        for p in patterns:
            s = str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + s)
            else:
                out.append("/" + prefix + s)
    walk(get_resolver().url_patterns, "")
    res = []
    for u in out:
        if u.startswith(("/admin/", "/static", "/media")): continue
        if "(?P" in u or "^" in u: continue
        u = re.sub(r"<int:[^>]+>", "1", u)
        u = re.sub(r"<(str:)?(fmt)>", "csv", u)
        u = re.sub(r"<[^>]+>", "x", u)
        res.append(u)
    return sorted(set(res))

@pytest.mark.django_db
@pytest.mark.parametrize("role", ["finance_clerk", "finance_approver", "tax_staff", "employer_operator", "employer_approver", "auditor", "individual"])
def test_probe_routes(client, role):
    user = f.make_user(role=role)
    client.force_login(user)
    bad = []
    for u in _urls():
        r = client.get(u)
        if r.status_code >= 500 or (r.status_code == 302 and "/login" in r.get("Location", "")):
            bad.append((u, r.status_code, r.get("Location")))
    assert not bad, bad
