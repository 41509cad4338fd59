"""What the old-netaio peer scripts print: one JSON line per message. The
standard library only, since it runs in the old release's interpreter."""

from __future__ import annotations

import json
import sys
from typing import Any

TIMEOUT = 10.0


def describe(message: Any) -> str:
    """{"type": int, "uri": hex, "content": hex, "auth": [field names]}."""
    return json.dumps(
        {
            "type": message.header.message_type.value,
            "uri": message.body.uri.hex(),
            "content": message.body.content.hex(),
            "auth": sorted(message.auth_data.fields),
        }
    )


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
