"""Looking at and ageing the files stored under MEDIA_ROOT, for the tests of the daily removal of uploads no
record names (treasury/stored_files.py)."""
import os
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone


def stored(folder: str) -> set[str]:
    root = Path(settings.MEDIA_ROOT) / folder
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


def age(folder: str, days: int) -> None:
    """As if every file of the folder had been written `days` ago."""
    then = (timezone.now() - timedelta(days=days)).timestamp()
    for path in (Path(settings.MEDIA_ROOT) / folder).iterdir():
        os.utime(path, (then, then))
