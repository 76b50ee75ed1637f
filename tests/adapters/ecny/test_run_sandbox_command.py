"""`manage.py run_sandbox` serves the sandbox operator as its own process."""
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from adapters.ecny.client import HttpOperatorClient
from adapters.ecny.sandbox.admin import SandboxAdminClient, SandboxAdminError

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def test_run_sandbox_serves_with_settings_key_and_storage(settings, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    storage = tmp_path / "nested" / "sandbox.sqlite3"
    process = subprocess.Popen([sys.executable, "manage.py", "run_sandbox", "--port", str(port), "--storage",
                                str(storage)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "sandbox did not come up"
                time.sleep(0.1)
        admin = SandboxAdminClient(url, settings.ECNY_OPERATOR_API_KEY)
        wallet = admin.open_wallet(wallet_type="WT01", wallet_class=4, holder_name="张三")
        check = HttpOperatorClient(url, settings.ECNY_OPERATOR_API_KEY, 5, 2).verify_wallets([(wallet["wallet_id"], "张三")])
        assert check[0].exists and check[0].wallet_class == 4
        # Class 4 limits came from settings.WALLET_CLASS_LIMITS: its cap refuses funding beyond it.
        cap = settings.WALLET_CLASS_LIMITS[4]["balance_cap_fen"]
        admin.fund(wallet_id=wallet["wallet_id"], amount_fen=cap)
        with pytest.raises(SandboxAdminError):
            admin.fund(wallet_id=wallet["wallet_id"], amount_fen=1)
        assert storage.exists()
    finally:
        process.terminate()
        process.wait(timeout=10)
