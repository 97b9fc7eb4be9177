"""The effective config for people: secrets redacted, written back as TOML."""

from __future__ import annotations

import json
import re
from typing import Any

from stovectl.settings.root import Settings

_SECRET = re.compile(r"(pin|token|password)$")


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective config as plain data with every secret replaced by stars."""
    data: dict[str, Any] = settings.model_dump(mode="json", exclude_none=True)

    def scrub(node: object) -> None:
        if isinstance(node, dict):
            for key in [key for key in node if _SECRET.search(key) and f"{key}_file" in node]:
                # Read from its file: showing the file alone keeps the output a loadable
                # config, which giving both the secret and its file is not.
                del node[key]
            for key, value in node.items():
                if _SECRET.search(key) and isinstance(value, str):
                    node[key] = "********"
                else:
                    scrub(value)
        elif isinstance(node, list):
            for item in node:
                scrub(item)

    scrub(data)
    return data


def to_toml(data: dict[str, Any]) -> str:
    """Write plain config data back as TOML (for ``stovectl config show``)."""
    lines: list[str] = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
    lines.extend(f"{key} = {_toml_value(value)}" for key, value in scalars.items())
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in value.items())
        elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
            for item in value:
                lines.append(f"\n[[{key}]]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
