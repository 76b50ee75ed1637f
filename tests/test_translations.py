"""The pages' two languages: page text is English in templates and code, Chinese in the catalogs.

A template's own words go through {% translate %} / {% blocktranslate %}, so the language switch turns the whole
page; Chinese written straight into a template would show on the English page too. (Domain labels such as a
state's "已完成 (done)" are data, not template text: they come from the models in both languages.)
Each catalog's compiled .mo is the one its .po makes, so a translation edited and not compiled shows.
"""
import gettext
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CJK = re.compile(r"[\u4e00-\u9fff]")
# What a template may hold in Chinese: translation blocks (their source text is English; checked below), comments.
NOT_PAGE_TEXT = [
    re.compile(r"\{%\s*blocktranslate.*?%\}.*?\{%\s*endblocktranslate\s*%\}", re.S),
    re.compile(r"\{%\s*comment\s*%\}.*?\{%\s*endcomment\s*%\}", re.S),
    re.compile(r"\{#.*?#\}", re.S),
    re.compile(r"\{%.*?%\}", re.S),
]
TRANSLATED = re.compile(r"\{%\s*(?:translate|trans)\s+\"([^\"]*)\"|\{%\s*blocktranslate.*?%\}(.*?)\{%\s*endblocktranslate",
                        re.S)


def _project_files(pattern: str) -> list[Path]:
    skip = {".venv", "var", "node_modules"}
    return sorted(p for p in ROOT.glob(pattern) if not skip & set(p.relative_to(ROOT).parts))


TEMPLATES = _project_files("**/templates/**/*.html")
CATALOGS = _project_files("**/locale/*/LC_MESSAGES/django.po")


def test_templates_and_catalogs_are_found():
    assert len(TEMPLATES) > 50 and len(CATALOGS) >= 2


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_template_text_is_translatable(template):
    source = template.read_text(encoding="utf-8")
    text = source
    for pattern in NOT_PAGE_TEXT:
        text = pattern.sub("", text)
    untranslated = [line.strip() for line in text.splitlines() if CJK.search(line)]
    assert not untranslated, f"Chinese outside {{% translate %}}: {untranslated[:3]}"
    # English, with at most a Chinese term quoted in it ("Earmark conditions (专款专用)").
    chinese_msgids = [m for pair in TRANSLATED.findall(source) for m in pair if CJK.match(m.strip())]
    assert not chinese_msgids, f"msgids are English, the catalogs hold the Chinese: {chinese_msgids[:3]}"


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="needs gettext's msgfmt")
@pytest.mark.parametrize("po", CATALOGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_compiled_catalog_matches_its_source(po, tmp_path):
    compiled = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "--check", "-o", str(compiled), str(po)], check=True, capture_output=True)

    def catalog(path: Path) -> dict:
        with path.open("rb") as mo:
            return dict(gettext.GNUTranslations(mo)._catalog)

    committed = po.with_suffix(".mo")
    assert committed.exists(), f"{committed.relative_to(ROOT)} is missing: run msgfmt"
    assert catalog(committed) == catalog(compiled), f"{committed.relative_to(ROOT)} is stale: run msgfmt"


def test_a_message_reads_the_same_in_every_catalog():
    """Django merges the catalogs, the project's first, then the apps' in INSTALLED_APPS order: a msgid one catalog
    translates otherwise than another shows the first's translation everywhere, and the other never. Where a
    domain needs its own word ("Paid": 已发放 for salaries, 已支付 for a fiscal payment) it says so with a context
    (`{% translate "Paid" context "fiscal" %}`, `pgettext`)."""
    translations = {}
    for po in CATALOGS:
        with po.with_suffix(".mo").open("rb") as mo:
            for msgid, msgstr in gettext.GNUTranslations(mo)._catalog.items():
                if msgid and msgstr:
                    translations.setdefault(msgid, {})[str(po.relative_to(ROOT))] = msgstr
    differing = {msgid: found for msgid, found in translations.items() if len(set(found.values())) > 1}
    assert not differing, differing
