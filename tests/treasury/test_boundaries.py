"""Layer rules a reader should be able to trust: domains never talk to an operator directly,
and only the treasury core writes transfers and ledger entries."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = ["payroll", "fiscal_disbursement", "tax", "social_security"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("domain", DOMAINS)
def test_domains_do_not_import_the_operator_adapter(domain):
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / domain).rglob("*.py")
        for name in imported_modules(path)
        if name.startswith("adapters.ecny")
    ]
    assert offenders == []


def test_the_rule_catches_an_offender(tmp_path):
    """The scanner itself works (a test that cannot fail is worse than none)."""
    offender = tmp_path / "services.py"
    offender.write_text("from adapters.ecny.client import get_operator_client\n")
    assert "adapters.ecny.client" in imported_modules(offender)


@pytest.mark.parametrize("domain", DOMAINS)
def test_domains_do_not_write_ledger_tables(domain):
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / domain).rglob("*.py")
        if "treasury_ledgerentry" in path.read_text(encoding="utf-8")
        or "LedgerEntry.objects.create" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
