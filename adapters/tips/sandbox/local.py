"""The sandbox tax system beside this service, in its process (the demo, the tests): started on a thread
with a fresh key pair, and the service's TIPS settings pointed at it until the block ends."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from adapters.tips.sandbox.server import start_in_thread


@contextmanager
def tips_sandbox_for(*, service_url: str, directory: Path):
    """The sandbox tax system sending to `service_url` (this service's /tips/soap/), its storage and keys
    in `directory`. Yields its handle (`url`, `admin`); TIPS_SYSTEM_URL and TIPS_PEER_PUBLIC_KEY_FILE
    point at it, and the TIPS client and key caches are cleared, on the way in and out."""
    from adapters.tips import signing
    from adapters.tips.client import get_tips_client
    from treasury.keys import public_key_pem

    def clear_caches():
        signing.peer_public_key.cache_clear()
        get_tips_client.cache_clear()

    service_key = directory / "tips-service.pub.pem"
    service_key.write_text(public_key_pem())
    saved = {name: getattr(settings, name) for name in ("TIPS_SYSTEM_URL", "TIPS_PEER_PUBLIC_KEY_FILE")}
    settings.TIPS_PEER_PUBLIC_KEY_FILE = directory / "tips-sandbox.pub.pem"
    handle = start_in_thread(storage_path=str(directory / "tips-sandbox.sqlite3"),
                             key_file=directory / "tips-sandbox.pem", public_key_file=settings.TIPS_PEER_PUBLIC_KEY_FILE,
                             service_public_key_file=service_key,
                             service_url=service_url, node_code=settings.TIPS_PEER_NODE_CODE,
                             service_node_code=settings.TIPS_NODE_CODE, max_bytes=settings.TIPS_MESSAGE_MAX_BYTES)
    settings.TIPS_SYSTEM_URL = handle.url
    clear_caches()
    try:
        yield handle
    finally:
        handle.stop()
        handle.app.close()
        for name, value in saved.items():
            setattr(settings, name, value)
        clear_caches()
