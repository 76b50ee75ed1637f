"""Every benchmark runs with production's settings: DJANGO_DEBUG=0, with throwaway secrets.

Imported before Django is set up; the sandboxes and Celery workers a benchmark starts inherit the
environment. With DEBUG on, Django's debug cursor records every query, which production does not pay
for (3% of paying a 100,000-line payroll).
"""
import os
import secrets

os.environ["DJANGO_DEBUG"] = "0"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
for _name in ("DJANGO_SECRET_KEY", "ECNY_OPERATOR_API_KEY", "BUDGET_SYSTEM_API_KEY"):
    os.environ.setdefault(_name, "bench-" + secrets.token_urlsafe(32))
os.environ.setdefault("SERVICE_SIGNING_KEY_CREATE", "1")  # a development key, created on first use
