"""Follow every link a signed-in user can reach, as a browser would by GET, to check what whole pages show.

    pages = crawl(client, ["/", "/api/v1/tax/deductions/"])   # {url: Page(status, body)}

From pages it follows each `href` on the site; from an API list under /api/v1/ it opens the first rows by id. It
never logs out, switches language, opens static files or further pages of a list.
"""
import json
import re
from typing import NamedTuple

LINK = re.compile(r'href="(/[^"#]*)"')


class Page(NamedTuple):
    status: int
    body: str


def crawl(client, starts: list[str], *, limit: int = 400) -> dict[str, Page]:
    seen, queue = {}, list(starts)
    while queue and len(seen) < limit:
        url = queue.pop(0)
        if url in seen or url.startswith(("/static/", "/i18n/", "/logout")) or "page=" in url:
            continue
        response = client.get(url)
        body = (b"".join(response.streaming_content) if response.streaming else response.content).decode(
            "utf-8", errors="replace")
        seen[url] = Page(response.status_code, body)
        content_type = response.get("Content-Type", "")
        if response.status_code != 200:
            continue
        if "html" in content_type:
            queue += [link.replace("&amp;", "&") for link in LINK.findall(body)]
        elif "json" in content_type and url.startswith("/api/v1/"):
            rows = json.loads(body)
            rows = rows.get("results", []) if isinstance(rows, dict) else rows
            queue += [f"{url.split('?')[0]}{row['id']}/" for row in rows[:5] if isinstance(row, dict) and "id" in row]
    return seen
