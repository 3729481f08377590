"""Runs last: no secret value set by any test appears in any data folder (the
database, its WAL, the audit log) or in any server's output."""
from conftest import DATA_DIRS, OUTPUTS, REMEMBERED


def test_no_secret_value_at_rest_or_in_output():
    assert len(REMEMBERED) > 100, "the suite set values to look for"
    files = [p for d in DATA_DIRS if d.exists() for p in d.rglob("*") if p.is_file()] + [p for p in OUTPUTS if p.exists()]
    assert any(p.name == "keyfort.db" for p in files)
    needles = [v.encode() for v in REMEMBERED]
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"a secret value appears in {path}"
