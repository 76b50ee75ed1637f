"""`manage.py run_tips_sandbox` serves the sandbox tax system as its own process, with its own key pair."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from zeep import Client

from adapters.tips import signing
from adapters.tips.client import SoapTipsClient
from adapters.tips.sandbox.admin import TipsSandboxAdminClient
from adapters.tips.sandbox.server import DEFAULT_API_KEY

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def test_run_tips_sandbox_answers_a_signed_9005_and_publishes_its_key(settings, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    public_key = tmp_path / "keys" / "tips-sandbox.pub.pem"
    env = {**os.environ, "TIPS_PEER_PUBLIC_KEY_FILE": str(public_key)}
    process = subprocess.Popen([sys.executable, "manage.py", "run_tips_sandbox", "--port", str(port), "--storage",
                                str(tmp_path / "nested" / "tips.sqlite3"), "--key-file", str(tmp_path / "tips.pem"),
                                "--service-url", "http://127.0.0.1:9/tips/soap/"],
                               cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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
        assert public_key.exists() and (tmp_path / "tips.pem").stat().st_mode & 0o077 == 0
        assert Client(url + "?wsdl").wsdl.services["TipsTaxService"]
        peer = signing.load_public_key(public_key)
        client = SoapTipsClient(url=url, node_code=settings.TIPS_NODE_CODE, peer_node_code=settings.TIPS_PEER_NODE_CODE,
                                timeout_seconds=5, retries=0, max_bytes=10 ** 6, peer_key=lambda: peer,
                                recorder=lambda **entry: None)
        assert client.connectivity_test().result == "90000"
        admin = TipsSandboxAdminClient(url, DEFAULT_API_KEY)
        assert admin.counts()["results"] == 0  # a 9005 changes nothing
        admin.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
