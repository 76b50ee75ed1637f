"""Uploaded files that no record names are removed after a day.

Uploads are stored under MEDIA_ROOT named by their content before they are checked (a file of a million lines is
parsed from the stored copy). A file refused as a whole (not a spreadsheet, too large, a repeat of a live run) or a
draft's payee file replaced by another is then named by nothing, yet holds names, resident IDs and wallets. The
apps' daily tasks remove such files once they are a day old: a file being stored again is written anew (its time
moves on), so one in use by an upload in progress is never that old."""
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings

KEPT_FOR = timedelta(days=1)


def remove_unreferenced(*, folder: str, referenced: set[str], now: datetime) -> int:
    """Remove the files of `folder` (under MEDIA_ROOT) older than KEPT_FOR whose path (`folder/name`) is not in
    `referenced`, with the spools of uploads that died while being stored; returns how many."""
    root = Path(settings.MEDIA_ROOT) / folder
    if not root.is_dir():
        return 0
    cutoff = (now - KEPT_FOR).timestamp()
    removed = 0
    for path in root.iterdir():
        if path.is_file() and f"{folder}/{path.name}" not in referenced and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
