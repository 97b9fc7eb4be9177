"""Reading a config file and the environment into Settings, or one readable ConfigError."""

from __future__ import annotations

import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic_settings import SettingsError

from stovectl.errors import ConfigError
from stovectl.settings.root import Settings
from stovectl.settings.types import DEFAULT_CONFIG_PATH, credentials_folder


def load_settings(path: Path | None = None) -> Settings:
    """Read, validate and cross-check the config; raise ConfigError on any problem."""
    path = path or DEFAULT_CONFIG_PATH
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(
            f"bad configuration: {path}: file not found (pass --config FILE or create it; "
            "config/stovectl.toml in the source tree is a working example)"
        ) from None
    except OSError as error:
        raise ConfigError(f"bad configuration: {path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"bad configuration: {path}: not valid TOML: {error}") from None
    folder = credentials_folder.set(path.parent / "credentials")
    try:
        return settings_from_mapping(data, source=str(path))
    finally:
        credentials_folder.reset(folder)


ENV_PREFIX = "STOVECTL_"
CLIENT_ENV = frozenset({"STOVECTL_SOCKET", "STOVECTL_CONFIG"})
"""Read by the command line, not by the settings."""


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """``STOVECTL_…`` variables that name no setting: a typo must not pass silently."""
    unknown = []
    for name in environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in CLIENT_ENV:
            continue
        model: type[BaseModel] | None = Settings
        for part in upper.removeprefix(ENV_PREFIX).lower().split("__"):
            field = model.model_fields.get(part) if model is not None else None
            if field is None:
                unknown.append(name)
                break
            model = _model_in(field.annotation)
    return sorted(unknown)


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The settings model a field holds, seeing through ``Model | None``."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def settings_from_mapping(data: dict[str, Any], source: str = "<config>") -> Settings:
    """Validate an already-parsed config mapping (tests and the demo use this)."""
    if unknown := unknown_environment(os.environ):
        raise ConfigError(
            f"bad configuration: {source}\n" + "\n".join(
                f"  environment variable {name}: names no setting (check its spelling; "
                "sections and keys are joined with __)" for name in unknown
            )
        )
    try:
        return Settings(**data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, data, source)) from None
    except SettingsError as error:
        # A STOVECTL_ variable for a section or a list whose value is not JSON.
        found = re.search(r'field "([^"]+)"', str(error))
        section = f"{ENV_PREFIX}{found.group(1).upper()}" if found else ENV_PREFIX
        names = sorted(n for n in os.environ if n.upper() == section
                       or n.upper().startswith(f"{section}__"))
        name = " or ".join(names) or f"{section}…"
        raise ConfigError(
            f"bad configuration: {source}\n  environment variable {name}: not valid JSON "
            "(a section or a list is given as JSON, e.g. '[\"a\", \"b\"]'; or set its "
            "fields one by one with __)"
        ) from None


def format_validation_error(error: ValidationError, data: dict[str, Any], source: str) -> str:
    lines = [f"bad configuration: {source}"]
    for problem in error.errors():
        field = _field_path(problem["loc"], data)
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and the section it is in)"
        elif problem["type"] == "missing":
            message = "required, but not given"
        elif problem["type"] == "union_tag_invalid":
            context = problem.get("ctx", {})
            message = (
                f"kind {context.get('tag')!r} is not known "
                f"(known kinds: {context.get('expected_tags')})"
            )
        lines.append(f"  {field}: {message}" if field else f"  {message}")
    return "\n".join(lines)


def _field_path(loc: tuple[int | str, ...], data: object) -> str:
    path = ""
    node: object = data
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            label = f"[{part}]"
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                label = f"[{part}] (id {item['id']!r})"
            path += label
            node = item
            continue
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue  # the discriminated union's tag, not a key the user wrote
        path += f".{part}" if path else part
        node = node.get(part) if isinstance(node, dict) else None
    return path
