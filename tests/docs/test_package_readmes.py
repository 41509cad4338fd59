"""What the distribution READMEs show (tests/docs/test_code_blocks.py runs
each of their blocks alone; tests/core/test_readme.py runs netaio-core's
with netaio-core alone installed)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "packages" / "netaio-core" / "README.md"
AUTH = ROOT / "packages" / "netaio-auth" / "README.md"


def _blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def test_auth_readme_usage_binds_loopback() -> None:
    assert 'host="127.0.0.1"' in _blocks(AUTH)[0]


def test_core_readme_has_its_examples() -> None:
    assert len(_blocks(CORE)) >= 3
