"""Bad config files and environments: one readable ConfigError naming file and field, never more.

The shipped ``config/stovectl.toml`` (plus a PIN, an MQTT password and a miIO
token, so there are secrets to keep) is varied the ways people get configs
wrong: a value of the wrong type, huge, NaN or a date; an unknown key at any
depth; a key deleted; a duration that is not one; an id unfit for topics;
a burner naming a device that is not there, or a channel the device lacks.
Each variant is written as TOML and read by ``load_settings``, as the daemon
reads it; every so often also by ``stovectl config check`` in a child process,
which must exit 78. Arbitrary text, and ``STOVECTL_…`` variables set to junk,
go the same way. A ConfigError's first line names the file, each further line
a field and its problem; no traceback, no pydantic jargon, no secret.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from stovectl.errors import ConfigError
from stovectl.settings import Settings, load_settings, settings_from_mapping
from tests.fuzz.campaign import SOAK, TEXT, Tally, budget

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "stovectl.toml"
SECRETS = {
    "pin": "SECRET-PIN-4711",
    "password": "SECRET-PASSWORD-0815",
    "token": "5ec7e75ec7e75ec7e75ec7e75ec7e75e",
}
SECRET_KEY_ENDINGS = ("pin", "token", "password")
CLI_EVERY = 40
"""Every this many structured variants also go through the real CLI (about 0.5 s each)."""
CLI_SAMPLES = 100 if SOAK else 6
EXIT_CONFIG = 78
JARGON = ("Traceback", "pydantic", "errors.pydantic.dev", "ValidationError", "model_type",
          "input_value", "SettingsError")


def base_config() -> dict[str, Any]:
    data = tomllib.loads(SHIPPED.read_text())
    data["remote"]["pin"] = SECRETS["pin"]
    data["mqtt"] = {"host": "127.0.22.1", "username": "stovectl",
                    "password": SECRETS["password"]}
    data["devices"].append({"id": "relay", "kind": "miio", "host": "127.0.22.2",
                            "token": SECRETS["token"], "model": "yeelink.switch.sw1"})
    return data


BASE = base_config()


@pytest.fixture(autouse=True, scope="module")
def no_stovectl_environment() -> Iterator[None]:
    """The settings refuse unknown STOVECTL_ variables: none from outside may leak in."""
    saved = {k: v for k, v in os.environ.items() if k.upper().startswith("STOVECTL_")}
    for name in saved:
        del os.environ[name]
    yield
    os.environ.update(saved)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="stv-fuzz-cfg") as name:
        yield Path(name)


# -- writing TOML ----------------------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_string(k)} = {toml_value(v)}"
                                for k, v in value.items()) + " }"
    return toml_string(str(value))


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's, with DEL escaped too (keys are written the same way)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def to_toml(data: dict[str, Any]) -> str:
    """Each top-level key as one line; tables and arrays of tables inline."""
    return "".join(f"{toml_string(key)} = {toml_value(value)}\n" for key, value in data.items())


# -- varying the config ----------------------------------------------------------------

Path_ = tuple[str | int, ...]
DURATION_KEYS = frozenset({
    "poll_interval", "response_time", "timeout", "handshake_timeout", "cut_hold", "max_on",
    "alarm_after", "retry_max_interval", "relax_ttl", "warn_before", "trip_window",
    "flame_out_within", "keepalive", "session_expiry", "reconnect_max_interval",
    "connect_timeout",
})
BAD_DURATIONS = st.sampled_from([
    "5 parsecs", "-5s", "1e400s", "5", "0s", "99999999999d", "1h30", "", "5S", "½s", "1.5.2s",
    "1s1s", "PT5S", "5 s", "nan", "inf", "1ms", "367d", "NaNs",
]) | TEXT
BAD_IDS = st.sampled_from(["Left Burner", "a/b", "#", "+", "", "x" * 33, "all", "lëft", "LEFT",
                           "status", "events", " left", "left\n"])
KEYS = TEXT.filter(lambda key: key.isprintable() and key.strip() == key != "")
"""Keys as a person would misspell them. A key that is empty, blank or holds a line break is
named raw in its error, which then names nothing or breaks across lines (a known wart)."""
TOML_VALUES = st.recursive(
    st.one_of(
        st.booleans(), st.integers(), st.integers(min_value=2**63 - 1, max_value=2**80),
        st.floats(), TEXT, st.text(min_size=1_000, max_size=5_000, alphabet="ab"),
        st.dates(), st.datetimes(), st.times(),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=6,
)


def paths(node: Any, prefix: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every key path in the config, tables and arrays included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key), value
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index), value
            yield from paths(value, (*prefix, index))


def tables(node: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    if isinstance(node, dict):
        yield prefix
    if isinstance(node, dict | list):
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            yield from tables(value, (*prefix, key))


def get(data: Any, path: Path_) -> Any:
    for part in path:
        data = data[part]
    return data


@st.composite
def variants(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """The base config with one to three mistakes, and what each mistake was."""
    data = copy.deepcopy(BASE)
    done = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from([
            "wrong value", "wrong value", "unknown key", "deleted key", "bad duration",
            "bad id", "missing device", "bad channel", "duplicate burner",
        ]))
        every = list(paths(data))
        burners = data.get("burners")
        burners = burners if isinstance(burners, list) and burners else None
        if kind == "wrong value" and every:
            path, _ = draw(st.sampled_from(every))
            get(data, path[:-1])[path[-1]] = draw(TOML_VALUES)
        elif kind == "unknown key":
            table = draw(st.sampled_from(list(tables(data))))
            key = draw(KEYS.filter(lambda k, t=table: k not in get(data, t)))
            get(data, table)[key] = draw(TOML_VALUES)
        elif kind == "deleted key" and every:
            path, _ = draw(st.sampled_from(every))
            parent = get(data, path[:-1])
            if isinstance(parent, dict):
                del parent[path[-1]]
        elif kind == "bad duration":
            found = [p for p, _ in every if p and p[-1] in DURATION_KEYS]
            if found:
                path = draw(st.sampled_from(found))
                get(data, path[:-1])[path[-1]] = draw(BAD_DURATIONS)
        elif kind == "bad id":
            found = [p for p, _ in every if p and p[-1] in ("id", "device")]
            if found:
                path = draw(st.sampled_from(found))
                get(data, path[:-1])[path[-1]] = draw(BAD_IDS)
        elif kind == "missing device" and burners:
            burner = draw(st.sampled_from(burners))
            if isinstance(burner, dict):
                burner["device"] = draw(st.sampled_from(["nowhere", "relay2", "sim "]))
        elif kind == "bad channel" and burners:
            burner = draw(st.sampled_from(burners))
            if isinstance(burner, dict):
                burner["channel"] = draw(st.sampled_from([0, -1, 3, 17, 2**63 - 1, 2]))
        elif kind == "duplicate burner" and burners:
            burners.append(copy.deepcopy(draw(st.sampled_from(burners))))
        done.append(kind)
    return data, done


# -- judging a ConfigError -------------------------------------------------------------


def secret_values(data: Any) -> set[str]:
    """The secrets a config holds: every text under a pin, token or password key, unless the
    same text is also the value of another key, which an error may quote (the soak drew
    '000:' as a PIN and as a poll_interval)."""
    found, public = set(SECRETS.values()), set()
    for path, value in paths(data):
        if not (path and isinstance(path[-1], str) and isinstance(value, str)):
            continue
        if path[-1].endswith(SECRET_KEY_ENDINGS):
            if len(value) >= 4:
                found.add(value)
        else:
            public.add(value)
    return found - public


def unnameable_keys(data: Any) -> bool:
    """Whether the config has a key its error cannot show: empty, blank, or with a line break."""
    return any(isinstance(path[-1], str) and (not path[-1].strip() or "\n" in path[-1]
                                             or "\r" in path[-1])
               for path, _ in paths(data) if path)


def error_problems(message: str, source: Path, data: Any) -> list[str]:
    lines = message.splitlines()
    problems = []
    named_raw = unnameable_keys(data)  # such a key is named raw: a known wart, see KEYS
    head = f"bad configuration: {source}"
    if not lines or not (lines[0] == head or lines[0].startswith(f"{head}: ")):
        problems.append(f"the first line does not name the file: {lines[:1]}")
    if lines and lines[0] == head and len(lines) < 2:
        problems.append("no field is named")
    for line in lines[1:]:
        if not named_raw and (not line.startswith("  ") or ": " not in line.strip()):
            problems.append(f"a line that names no field: {line!r}")
    problems += [f"jargon {word!r} in the message" for word in JARGON if word in message]
    shown = [secret for secret in secret_values(data) if secret in message]
    problems += [f"a secret is printed: {secret[:4]}..." for secret in shown]
    if len(message) > 20_000:
        problems.append(f"a message of {len(message)} characters")
    return problems


def load(path: Path) -> tuple[Settings | None, str | None]:
    try:
        return load_settings(path), None
    except ConfigError as error:
        return None, str(error)


def cli_check(path: Path) -> subprocess.CompletedProcess[str]:
    program = Path(sys.executable).with_name("stovectl")
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("STOVECTL_")}
    return subprocess.run([str(program), "config", "check", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, env=environment,
                          check=False)


# -- the tests -------------------------------------------------------------------------


class CliSampler:
    """Which variants also go through the real CLI: every CLI_EVERY-th, CLI_SAMPLES in all."""

    def __init__(self) -> None:
        self.seen = 0
        self.run = 0

    def wants(self) -> bool:
        self.seen += 1
        if self.run < CLI_SAMPLES and self.seen % CLI_EVERY == 1:
            self.run += 1
            return True
        return False


SAMPLER = CliSampler()


@budget(bounded=300, soak=5_000)
@given(variant=variants())
def test_a_varied_config_loads_or_says_which_field_is_wrong(
    folder: Path, tally: Tally, variant: tuple[dict[str, Any], list[str]]
) -> None:
    """The shipped config with up to three mistakes loads, or fails with one ConfigError whose
    lines name the file and each field, without a secret; the CLI says the same, exit 78."""
    data, mistakes = variant
    tally.tried("structured variants", *mistakes)
    path = folder / "varied.toml"
    text = to_toml(data)
    path.write_text(text)
    assert tomllib.loads(text) == data or any(
        isinstance(v, float) and math.isnan(v) for _, v in paths(data)
    ), "the test's TOML writer lost something"
    _settings, message = load(path)
    if message is None:
        tally.saw("loaded")
        return
    tally.saw("ConfigError")
    problems = error_problems(message, path, data)
    assert not problems, "\n".join([message[:2000], *problems])
    if SAMPLER.wants():
        tally.saw("also through `stovectl config check`")
        done = cli_check(path)
        assert done.returncode == EXIT_CONFIG, done
        assert done.stderr.strip() == f"stovectl: {message}", done.stderr
        assert done.stdout == "", done.stdout


TOML_LINES = st.one_of(
    st.sampled_from(["[stove]", "[[devices]]", "[[burners]]", "[mqtt]", "[remote]", "[safety]",
                     "[mqtt.tls]", "[[devices.channels]]", "[stove", "[]", "[[]]", "= 1"]),
    st.builds(lambda k, v: f"{k} = {v}",
              st.sampled_from(["id", "kind", "channels", "device", "channel", "cut_state",
                               "cut_hold", "pin", "token", "host", "x", "\"\"", "a.b"]),
              st.sampled_from(['"sim"', '"simulated"', "2", "1", '"on"', '"5s"', "nan", "inf",
                               "[1, 2]", "{ a = 1 }", "1979-05-27", '"""', "'x'", "true",
                               "0x10", "1_000", "+1", "08"])),
    TEXT,
)


@budget(bounded=200, soak=3_000)
@given(text=st.text(max_size=300) | st.lists(TOML_LINES, max_size=12).map("\n".join))
def test_arbitrary_text_is_a_config_error_naming_the_file(
    folder: Path, tally: Tally, text: str
) -> None:
    """Any text at all, TOML-like or not, loads or gives a ConfigError naming the file."""
    tally.tried("arbitrary text", "toml-ish lines" if "=" in text else "text")
    path = folder / "arbitrary.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _settings, message = load(path)
    tally.saw("loaded" if message is None else "ConfigError")
    if message is not None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            data = {}
        problems = error_problems(message, path, data)
        assert not problems, "\n".join([message[:2000], *problems])


def setting_variables(model: type[BaseModel], prefix: str = "STOVECTL_") -> Iterator[str]:
    """The environment variable of every setting: plain values, and whole sections, lists
    and tables, which pydantic-settings reads as JSON."""
    for name, field in model.model_fields.items():
        yield f"{prefix}{name.upper()}"
        annotation = field.annotation
        inner = [a for a in (annotation, *typing.get_args(annotation)) if a is not type(None)]
        for candidate in inner:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                yield from setting_variables(candidate, f"{prefix}{name.upper()}__")


ENVIRONMENT_NAMES = sorted(set(setting_variables(Settings)))


@budget(bounded=150, soak=3_000)
@given(
    assignments=st.dictionaries(
        st.sampled_from(ENVIRONMENT_NAMES) | st.sampled_from(
            ["STOVECTL_SAFTY__ALARM_AFTER", "STOVECTL_STOVE__", "STOVECTL_", "stovectl_stove__id",
             "STOVECTL_STOVE__ID__X"]),
        st.text(max_size=40).filter(lambda v: "\x00" not in v) | BAD_DURATIONS.filter(
            lambda v: "\x00" not in v) | st.sampled_from(["", "{", "[1]", "true", "1e999"]),
        min_size=1, max_size=3,
    ),
)
def test_junk_in_the_environment_is_a_config_error_naming_the_variable_or_field(
    tally: Tally, assignments: dict[str, str]
) -> None:
    """STOVECTL_ variables of any setting, set to anything, load or give a ConfigError."""
    tally.tried("environment", *(name.split("__")[0] for name in assignments))
    saved = {name: os.environ.get(name) for name in assignments}
    os.environ.update(assignments)
    try:
        settings_from_mapping(copy.deepcopy(BASE), source="fuzz.toml")
    except ConfigError as error:
        tally.saw("ConfigError")
        problems = error_problems(str(error), Path("fuzz.toml"), BASE)
        assert not problems, "\n".join([str(error)[:2000], *problems])
    else:
        tally.saw("loaded")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
