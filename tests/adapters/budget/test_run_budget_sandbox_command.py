"""`manage.py run_budget_sandbox` serves the sandbox budget system as its own process."""
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from adapters.budget.client import SoapBudgetClient

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def test_run_budget_sandbox_serves_the_demo_quotas_with_the_settings_key(settings, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    storage = tmp_path / "nested" / "budget.sqlite3"
    process = subprocess.Popen([sys.executable, "manage.py", "run_budget_sandbox", "--port", str(port), "--storage",
                                str(storage), "--seed-demo"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "sandbox did not come up"
                time.sleep(0.1)
        client = SoapBudgetClient(url=url, api_key=settings.BUDGET_SYSTEM_API_KEY, timeout_seconds=5, retries=0,
                                  max_bytes=10**6, recorder=lambda **entry: None)
        quotas = client.query_quotas(fiscal_year=2026)
        assert {q.adm_div_code for q in quotas} == {"370100"} and len(quotas) == 5
        assert {q.exp_func_code for q in quotas} == {"2080505", "2089999", "2130599"}
        assert all(q.amount_fen >= 1_000_000_00 for q in quotas)
        assert b"soap:address" in requests.get(url + "?wsdl", timeout=5).content
        assert storage.exists()
    finally:
        process.terminate()
        process.wait(timeout=10)
