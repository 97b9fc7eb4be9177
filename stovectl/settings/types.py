"""The building blocks of every settings model: strict models, durations, ids, secrets."""

from __future__ import annotations

import os
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
)

from stovectl.durations import format_duration, parse_duration

DEFAULT_CONFIG_PATH = Path("/etc/stovectl/stovectl.toml")
MIN_CUT_HOLD = timedelta(seconds=2)
ID_PATTERN = r"^[a-z0-9_-]{1,32}$"
RESERVED_BURNER_IDS = frozenset({"all", "status", "events"})


def _to_timedelta(value: object) -> object:
    if isinstance(value, bool):
        # pydantic would take true as one second; a duration is never a yes or no.
        message = f"{str(value).lower()} is not a duration; write it like 90s or 15m"
        raise ValueError(message)  # noqa: TRY004  # pydantic reports only ValueError as invalid
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return parse_duration(str(value))
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


CREDENTIAL_PREFIX = "stovectl_"
"""``LoadCredential=stovectl:/etc/stovectl/credentials`` loads each file of the folder as
``stovectl_<file name>``; both that name and the bare one are looked for."""

credentials_folder: ContextVar[Path | None] = ContextVar("credentials_folder", default=None)
"""Where credentials are looked for outside systemd: the ``credentials`` folder beside
the config file being loaded, so ``config check`` and ``doctor`` see what the service sees."""


def find_credential(name: str) -> Path | None:
    """The file of credential ``name``: in ``$CREDENTIALS_DIRECTORY`` under systemd, else in
    the config's ``credentials`` folder."""
    env = os.environ.get("CREDENTIALS_DIRECTORY")
    folder = Path(env) if env else credentials_folder.get()
    if folder is None:
        return None
    for candidate in (folder / name, folder / f"{CREDENTIAL_PREFIX}{name}"):
        try:
            if candidate.is_file():
                return candidate
        except PermissionError:
            raise ValueError(
                f"cannot look for the credential {name!r} in {folder}: permission denied "
                "(run this as root)"
            ) from None
    return None


def read_secret(
    value: SecretStr | None, file: Path | None, credential: str, field: str
) -> SecretStr | None:
    """Resolve a secret given inline, as a file, or as a credential (see find_credential)."""
    if value is not None and file is not None:
        raise ValueError(f"give either {field} or {field}_file, not both")
    if value is not None:
        return value
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if file is None:
        file = find_credential(credential)
    elif credentials and file.parent == credentials_folder.get():
        # A path into the folder the service loads as credentials, which it may not
        # read itself: the credential systemd made of that file.
        file = find_credential(file.name) or file
    if file is None:
        return None
    if credentials and not file.is_absolute():
        file = Path(credentials) / file
    try:
        text = file.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ValueError(f"cannot read {field}_file {str(file)!r}: {error.strerror}") from None
    if not text:
        raise ValueError(f"{field}_file {str(file)!r} is empty")
    return SecretStr(text)
