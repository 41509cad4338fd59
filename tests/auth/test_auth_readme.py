"""The custom plugin example of netaio-auth's README runs and passes mypy --strict."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "packages" / "netaio-auth" / "README.md"
MARKER = "<!-- example: custom-plugin -->"


def example() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, re.DOTALL)
    assert found, f"{README} has no python block after {MARKER}"
    return found.group(1)


def test_example_runs() -> None:
    code = example()
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)
    plugin_class = namespace["KeyRingPlugin"]
    assert isinstance(plugin_class, type)
    # The example's own asserts ran; a wrong key must also fail.
    from netaio_core import Body, Message

    ring = plugin_class({b"a": b"k" * 32}, current=b"a")
    other = plugin_class({b"a": b"j" * 32}, current=b"a")
    message = Message.prepare(Body.prepare(b"x"))
    ring.make(message.auth_data, message.body)
    assert ring.check(message.auth_data, message.body) is True
    assert other.check(message.auth_data, message.body) is False
    message.auth_data.fields["kid"] = b"unknown"
    assert ring.check(message.auth_data, message.body) is False


def test_example_passes_mypy_strict(tmp_path: Path, run_mypy: Any) -> None:
    source = tmp_path / "readme_example.py"
    source.write_text(example(), encoding="utf-8")
    result = run_mypy([source], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
