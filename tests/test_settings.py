"""Configuration: the example loads, every field is documented, and bad configs are named."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from stovectl.errors import ConfigError
from stovectl.settings import (
    Settings,
    load_settings,
    redacted,
    settings_from_mapping,
    to_toml,
    unknown_environment,
)
from tests.support.kitchen import kitchen_config

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "stovectl.toml"
SOURCE = "/etc/stovectl/kitchen.toml"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the host's STOVECTL_… variables and systemd credentials out of every test."""
    for name in list(os.environ):
        if name.upper().startswith("STOVECTL_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def refusal(data: dict[str, Any], source: str = SOURCE) -> str:
    """The message of the ConfigError that validating ``data`` must raise."""
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(data, source=source)
    message = str(caught.value)
    assert source in message
    return message


# -- the example config and the models' documentation ---------------------------------


def _model_types(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _model_types(arg)]


def _walk(
    model: type[BaseModel], section: str = ""
) -> Iterator[tuple[str, type[BaseModel], str, FieldInfo]]:
    """Every (section, model, field name, field) reachable from ``model``."""
    for name, field in model.model_fields.items():
        yield section, model, name, field
        for nested in _model_types(field.annotation):
            yield from _walk(nested, f"{section}.{name}" if section else name)


FIELDS = list(_walk(Settings))
MODELS: list[type[BaseModel]] = list(
    dict.fromkeys([Settings, *(model for _, model, _, _ in FIELDS)])
)
NOT_IN_EXAMPLE_YET: dict[tuple[str, str], str] = {}


def _mentioned_keys(text: str) -> set[tuple[str, str]]:
    """(section, key) pairs the TOML text names, commented out or not."""
    mentioned: set[tuple[str, str]] = set()
    section = ""
    for raw in text.splitlines():
        line = raw.strip().lstrip("#").strip()
        if header := re.match(r"^\[\[?\s*([\w.]+)\s*\]\]?", line):
            section = header.group(1)
            parent, _, key = section.rpartition(".")
            mentioned.add((parent, key))
        elif key_match := re.match(r"^(\w+)\s*=", line):
            mentioned.add((section, key_match.group(1)))
    return mentioned


def test_example_config_loads() -> None:
    """config/stovectl.toml loads into Settings with its two simulated burners."""
    settings = load_settings(EXAMPLE)

    assert [burner.id for burner in settings.burners] == ["left", "right"]
    assert [device.id for device in settings.devices] == ["sim"]
    assert settings.burner("right").channel == 2


@pytest.mark.parametrize(
    ("section", "key"),
    [
        pytest.param(
            section,
            name,
            id=f"{section}.{name}" if section else name,
            marks=[pytest.mark.xfail(reason=NOT_IN_EXAMPLE_YET[section, name], strict=True)]
            if (section, name) in NOT_IN_EXAMPLE_YET
            else [],
        )
        for section, _, name, _ in FIELDS
    ],
)
def test_example_config_mentions_every_field(section: str, key: str) -> None:
    """Every setting appears in config/stovectl.toml under its section, at least commented out."""
    assert (section, key) in _mentioned_keys(EXAMPLE.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "field",
    [pytest.param(field, id=f"{model.__name__}.{name}") for _, model, name, field in FIELDS],
)
def test_every_field_has_a_description(field: FieldInfo) -> None:
    """Every field of every settings model carries a description for people."""
    assert field.description
    assert field.description.strip()


@pytest.mark.parametrize("model", [pytest.param(model, id=model.__name__) for model in MODELS])
def test_every_model_forbids_unknown_keys(model: type[BaseModel]) -> None:
    """Each settings model, nested ones too, sets extra="forbid" itself."""
    assert model.model_config.get("extra") == "forbid"


# -- loading files ---------------------------------------------------------------------

BASE_TOML = """\
{top}
[stove]
id = "home"
{stove}

[[devices]]
kind = "simulated"
id = "sim"
{device}

[[burners]]
id = "left"
device = "sim"
{burner}

[safety]
{safety}

[remote]
{remote}

[daemon]
{daemon}
"""
SECTIONS = ("top", "stove", "device", "burner", "safety", "remote", "daemon")


def write_config(folder: Path, **inserts: str) -> Path:
    """A config file with ``inserts`` added to the named sections."""
    path = folder / "kitchen.toml"
    path.write_text(
        BASE_TOML.format(**{section: inserts.get(section, "") for section in SECTIONS}),
        encoding="utf-8",
    )
    return path


def test_minimal_config_file_loads_with_defaults(tmp_path: Path) -> None:
    """A config with one device and one burner loads, and the rest takes its defaults."""
    settings = load_settings(write_config(tmp_path))

    assert settings.stove.id == "home"
    assert settings.burner("left").cut_hold == timedelta(seconds=5)
    assert settings.burner("left").name == "left"
    assert settings.safety.alarm_after == timedelta(seconds=10)
    assert settings.remote.allow_relax is False
    assert settings.remote.pin is None


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("top", "colour"),
        ("stove", "stove.colour"),
        ("device", "devices[0] (id 'sim').colour"),
        ("burner", "burners[0] (id 'left').colour"),
        ("safety", "safety.colour"),
        ("remote", "remote.colour"),
        ("daemon", "daemon.colour"),
    ],
)
def test_unknown_key_is_refused_with_file_and_field(
    tmp_path: Path, section: str, field: str
) -> None:
    """An unknown key anywhere is a ConfigError naming the file and where the key is."""
    path = write_config(tmp_path, **{section: 'colour = "red"'})

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    message = str(caught.value)
    assert str(path) in message
    assert f"{field}: unknown key" in message


def test_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    """A config path that does not exist is a ConfigError naming the path."""
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError, match="file not found") as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


def test_directory_is_a_config_error_naming_it(tmp_path: Path) -> None:
    """A config path that is a folder is a ConfigError naming the path."""
    with pytest.raises(ConfigError, match="cannot read") as caught:
        load_settings(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_broken_toml_is_a_config_error_naming_it(tmp_path: Path) -> None:
    """A file that is not TOML is a ConfigError naming the path."""
    path = tmp_path / "broken.toml"
    path.write_text("[stove\nid = ", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


# -- validation of values and cross-references -------------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param(
            kitchen_config(devices=[{"kind": "simulated", "id": "sim", "channels": "two"}]),
            "devices[0] (id 'sim').channels",
            id="text-for-int",
        ),
        pytest.param(
            kitchen_config(remote={"allow_relax": "maybe"}), "remote.allow_relax", id="bool"
        ),
        pytest.param(
            kitchen_config(safety={"alarm_after": True}), "safety.alarm_after", id="bool-duration"
        ),
        pytest.param(
            kitchen_config(safety={"alarm_after": [10]}), "safety.alarm_after", id="list-duration"
        ),
        pytest.param(
            kitchen_config(safety={"retry_max_interval": "soon"}),
            "safety.retry_max_interval",
            id="word-duration",
        ),
        pytest.param(kitchen_config(stove="Kitchen"), "stove", id="text-for-section"),
        pytest.param(kitchen_config(burners={"id": "left"}), "burners", id="table-for-array"),
        pytest.param(
            kitchen_config(daemon={"log_level": "loud"}), "daemon.log_level", id="choice"
        ),
        pytest.param(
            kitchen_config(devices=[{"kind": "gpio", "id": "sim"}]),
            "devices[0] (id 'sim')",
            id="device-kind",
        ),
        pytest.param(kitchen_config(devices=[]), "devices", id="no-devices"),
        pytest.param(
            kitchen_config(devices=[{"kind": "simulated", "id": "sim", "channels": 17}]),
            "devices[0] (id 'sim').channels",
            id="too-many-channels",
        ),
    ],
)
def test_wrong_types_are_refused_naming_the_field(data: dict[str, Any], field: str) -> None:
    """A value of the wrong type or out of its choices is a ConfigError naming its field."""
    assert f"  {field}: " in refusal(data)


def test_missing_required_key_is_named() -> None:
    """A burner without a device is refused as required, naming the field."""
    data = kitchen_config(burners=[{"id": "left", "channel": 1}])
    assert "burners[0] (id 'left').device: required, but not given" in refusal(data)


def test_unknown_device_kind_lists_the_known_ones() -> None:
    """A device kind nobody implements is refused, and the message lists the known kinds."""
    data = kitchen_config(devices=[{"kind": "gpio", "id": "sim"}])
    message = refusal(data)
    assert "'gpio' is not known" in message
    assert "simulated" in message


def test_duplicate_device_ids_are_refused() -> None:
    """Two devices with one id are refused, naming the id."""
    data = kitchen_config(
        devices=[{"kind": "simulated", "id": "sim"}, {"kind": "simulated", "id": "sim"}]
    )
    assert "devices: two have the id 'sim'" in refusal(data)


def test_duplicate_burner_ids_are_refused() -> None:
    """Two burners with one id are refused, naming the id."""
    data = kitchen_config(
        burners=[
            {"id": "left", "device": "sim", "channel": 1},
            {"id": "left", "device": "sim", "channel": 2},
        ]
    )
    assert "burners: two have the id 'left'" in refusal(data)


def test_burner_naming_a_missing_device_is_refused() -> None:
    """A burner wired to a device that is not configured is refused, listing the devices."""
    data = kitchen_config(
        burners=[
            {"id": "left", "device": "sim", "channel": 1},
            {"id": "right", "device": "simm", "channel": 2},
        ]
    )
    message = refusal(data)
    assert "burners[1] (id 'right').device: names device 'simm'" in message
    assert "(devices: sim)" in message


def test_channel_beyond_the_device_is_refused() -> None:
    """A burner on channel 3 of a two-channel device is refused."""
    data = kitchen_config(burners=[{"id": "left", "device": "sim", "channel": 3}])
    message = refusal(data)
    assert "burners[0] (id 'left').channel: channel 3 of device 'sim'" in message
    assert "has 2 channel(s)" in message


def test_two_burners_on_one_channel_are_refused() -> None:
    """Two burners wired to the same channel of one device are refused, naming both."""
    data = kitchen_config(
        burners=[
            {"id": "left", "device": "sim", "channel": 2},
            {"id": "right", "device": "sim", "channel": 2},
        ]
    )
    assert (
        "burners[1] (id 'right').channel: burner 'left' is wired to channel 2 of device 'sim'"
        in refusal(data)
    )


@pytest.mark.parametrize("reserved", ["all", "status", "events"])
def test_reserved_burner_ids_are_refused(reserved: str) -> None:
    """A burner may not take an id the CLI and topics use for something else."""
    data = kitchen_config(burners=[{"id": reserved, "device": "sim"}])
    assert f"burners[0] (id {reserved!r}).id: {reserved!r} is reserved" in refusal(data)


@pytest.mark.parametrize("bad_id", ["Left Burner", "a/b", "left+", "#", "", "x" * 33, "lëft"])
def test_ids_unfit_for_topics_are_refused(bad_id: str) -> None:
    """Burner, device and stove ids outside [a-z0-9_-]{1,32} are refused (they go in topics)."""
    burner = kitchen_config(burners=[{"id": bad_id, "device": "sim"}])
    device = kitchen_config(
        devices=[{"kind": "simulated", "id": bad_id}], burners=[{"id": "left", "device": bad_id}]
    )
    stove = kitchen_config(stove={"id": bad_id})

    assert f"burners[0] (id {bad_id!r}).id: String should match pattern" in refusal(burner)
    assert f"devices[0] (id {bad_id!r}).id: String should match pattern" in refusal(device)
    assert "stove.id: String should match pattern" in refusal(stove)


@pytest.mark.parametrize("good_id", ["front-left", "b_2", "0", "x" * 32])
def test_ids_fit_for_topics_are_accepted(good_id: str) -> None:
    """Lower-case letters, digits, '-' and '_' up to 32 characters make an id."""
    data = kitchen_config(
        devices=[{"kind": "simulated", "id": good_id}], burners=[{"id": good_id, "device": good_id}]
    )
    assert settings_from_mapping(data).burner(good_id).device == good_id


@pytest.mark.parametrize("cut_hold", ["1s", "1.999s", "500ms", 1])
def test_cut_hold_below_two_seconds_is_refused(cut_hold: str | int) -> None:
    """A shutoff must hold the loop open at least 2 s, so the valve surely drops."""
    data = kitchen_config(burners=[{"id": "left", "device": "sim", "cut_hold": cut_hold}])
    assert "burners[0] (id 'left').cut_hold: must be at least 2s" in refusal(data)


def test_cut_hold_of_two_seconds_is_accepted() -> None:
    """Exactly 2 s is long enough for a shutoff's hold."""
    data = kitchen_config(burners=[{"id": "left", "device": "sim", "cut_hold": "2s"}])
    assert settings_from_mapping(data).burner("left").cut_hold == timedelta(seconds=2)


def test_durations_are_read_from_text_and_bare_numbers() -> None:
    """Duration settings take "1m30s" and a bare number of seconds alike."""
    data = kitchen_config(safety={"alarm_after": "1m30s", "retry_max_interval": 3})
    safety = settings_from_mapping(data).safety
    assert safety.alarm_after == timedelta(seconds=90)
    assert safety.retry_max_interval == timedelta(seconds=3)


def test_all_problems_are_reported_together() -> None:
    """Two bad fields give one ConfigError that names both."""
    data = kitchen_config(stove={"id": "Bad Id"}, safety={"alarm_after": "x"})
    message = refusal(data)
    assert "stove.id:" in message
    assert "safety.alarm_after:" in message


def test_burner_name_defaults_to_its_id() -> None:
    """A burner without a name is shown by its id."""
    settings = settings_from_mapping(kitchen_config())
    assert settings.burner("left").name == "left"


# -- secrets ---------------------------------------------------------------------------


def test_pin_given_inline_is_a_secret() -> None:
    """A PIN in the file is kept as a SecretStr that does not print."""
    settings = settings_from_mapping(kitchen_config(remote={"pin": "2468"}))

    assert settings.remote.pin is not None
    assert settings.remote.pin.get_secret_value() == "2468"
    assert "2468" not in repr(settings)


def test_pin_file_is_read_and_stripped(tmp_path: Path) -> None:
    """pin_file is read, and the newline an editor leaves is stripped."""
    pin_file = tmp_path / "pin"
    pin_file.write_text(" 2468\n", encoding="utf-8")

    settings = settings_from_mapping(kitchen_config(remote={"pin_file": str(pin_file)}))

    assert settings.remote.pin == SecretStr("2468")


def test_pin_and_pin_file_together_are_refused(tmp_path: Path) -> None:
    """Giving both pin and pin_file is ambiguous and refused."""
    pin_file = tmp_path / "pin"
    pin_file.write_text("2468", encoding="utf-8")
    data = kitchen_config(remote={"pin": "1357", "pin_file": str(pin_file)})
    assert "remote: give either pin or pin_file, not both" in refusal(data)


def test_missing_pin_file_is_refused_naming_it(tmp_path: Path) -> None:
    """A pin_file that does not exist is a ConfigError naming the file."""
    pin_file = tmp_path / "no-pin"
    message = refusal(kitchen_config(remote={"pin_file": str(pin_file)}))
    assert f"remote: cannot read pin_file {str(pin_file)!r}" in message


def test_empty_pin_file_is_refused_naming_it(tmp_path: Path) -> None:
    """A pin_file holding only whitespace is a ConfigError naming the file."""
    pin_file = tmp_path / "pin"
    pin_file.write_text("\n", encoding="utf-8")
    message = refusal(kitchen_config(remote={"pin_file": str(pin_file)}))
    assert f"remote: pin_file {str(pin_file)!r} is empty" in message


def test_pin_comes_from_systemd_credentials_when_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With neither pin nor pin_file, $CREDENTIALS_DIRECTORY/pin is the PIN."""
    (tmp_path / "pin").write_text("9753\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))

    settings = settings_from_mapping(kitchen_config())

    assert settings.remote.pin == SecretStr("9753")


def test_no_pin_without_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A credentials folder without a pin file leaves the PIN unset."""
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert settings_from_mapping(kitchen_config()).remote.pin is None


def test_relative_pin_file_is_resolved_in_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative pin_file names a file inside $CREDENTIALS_DIRECTORY."""
    (tmp_path / "stove-pin").write_text("8642", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))

    settings = settings_from_mapping(kitchen_config(remote={"pin_file": "stove-pin"}))

    assert settings.remote.pin == SecretStr("8642")


def test_a_credentials_folder_loaded_by_systemd_is_read_under_its_prefixed_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``LoadCredential=stovectl:/etc/stovectl/credentials`` names each file stovectl_<name>."""
    (tmp_path / "stovectl_pin").write_text("1357\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))

    assert settings_from_mapping(kitchen_config()).remote.pin == SecretStr("1357")


def test_outside_systemd_the_credentials_folder_beside_the_config_is_read(
    tmp_path: Path,
) -> None:
    """`sudo stovectl config check` sees the secrets the service is given."""
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "pin").write_text("2468\n", encoding="utf-8")

    assert load_settings(write_config(tmp_path)).remote.pin == SecretStr("2468")
    # Beside the config only while that config loads; and systemd's folder wins.
    assert settings_from_mapping(kitchen_config()).remote.pin is None


def test_systemds_credentials_win_over_the_folder_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "pin").write_text("2468", encoding="utf-8")
    (tmp_path / "systemd").mkdir()
    (tmp_path / "systemd" / "pin").write_text("8642", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "systemd"))

    assert load_settings(write_config(tmp_path)).remote.pin == SecretStr("8642")


def test_a_file_in_the_credentials_folder_is_read_as_its_credential_under_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pin_file = "/etc/stovectl/credentials/pin"`` works under the service, which may not
    read that root-only folder: systemd handed the file over as stovectl_pin."""
    (tmp_path / "credentials").mkdir()  # the service's user cannot read the file in it
    (tmp_path / "systemd").mkdir()
    (tmp_path / "systemd" / "stovectl_pin").write_text("9999", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "systemd"))
    path = write_config(tmp_path, remote=f'pin_file = "{tmp_path / "credentials" / "pin"}"')

    assert load_settings(path).remote.pin == SecretStr("9999")


def test_a_credentials_folder_closed_to_the_user_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "credentials").mkdir()
    path = write_config(tmp_path)

    def closed(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    # As root the kernel would let us in; the refusal a user gets is played here.
    monkeypatch.setattr(Path, "is_file", closed)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)

    assert (f"cannot look for the credential 'pin' in {tmp_path / 'credentials'}: "
            "permission denied (run this as root)") in str(raised.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("STOVECTL_STOVE", "{"), ("STOVECTL_DEVICES", "["), ("STOVECTL_SPEAKER__ANNOUNCE", "["),
     ("STOVECTL_UNATTENDED__BURNERS", "x")],
)
def test_an_environment_variable_that_is_not_json_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    message = refusal(kitchen_config())
    assert f"environment variable {name}: not valid JSON" in message


def test_redacted_hides_the_pin() -> None:
    """The effective config shown to people has stars where the PIN is."""
    settings = settings_from_mapping(kitchen_config(remote={"pin": "2468"}))

    data = redacted(settings)

    assert data["remote"]["pin"] == "********"
    assert "2468" not in repr(data)
    assert "2468" not in to_toml(data)


# -- environment -----------------------------------------------------------------------


def test_environment_overrides_one_key_and_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STOVECTL_STOVE__NAME replaces [stove] name; [stove] id still comes from the file."""
    monkeypatch.setenv("STOVECTL_STOVE__NAME", "From the environment")
    path = write_config(tmp_path, stove='name = "From the file"')

    settings = load_settings(path)

    assert settings.stove.name == "From the environment"
    assert settings.stove.id == "home"


def test_environment_duration_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """STOVECTL_SAFETY__ALARM_AFTER is read like the file's alarm_after."""
    monkeypatch.setenv("STOVECTL_SAFETY__ALARM_AFTER", "3s")
    settings = settings_from_mapping(kitchen_config(safety={"alarm_after": "20s"}))
    assert settings.safety.alarm_after == timedelta(seconds=3)
    assert settings.safety.retry_max_interval == timedelta(seconds=1)


def test_misspelt_environment_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A STOVECTL_ variable that names no setting is a ConfigError naming the variable."""
    monkeypatch.setenv("STOVECTL_SAFTY__ALARM_AFTER", "3s")
    message = refusal(kitchen_config())
    assert "environment variable STOVECTL_SAFTY__ALARM_AFTER: names no setting" in message


@pytest.mark.parametrize("name", ["STOVECTL_SOCKET", "STOVECTL_CONFIG"])
def test_client_variables_are_ignored_by_settings(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The command line's own variables are neither settings nor refused as typos."""
    expected = settings_from_mapping(kitchen_config())
    monkeypatch.setenv(name, "/tmp/elsewhere")
    assert settings_from_mapping(kitchen_config()) == expected


# -- writing the effective config back ---------------------------------------------------


def _round_trip(settings: Settings) -> Settings:
    text = to_toml(redacted(settings))
    return settings_from_mapping(tomllib.loads(text))


def test_example_config_round_trips_through_to_toml() -> None:
    """The example config, written by to_toml and read back, is the same settings."""
    settings = load_settings(EXAMPLE)
    assert _round_trip(settings) == settings


def test_full_config_round_trips_except_the_pin(tmp_path: Path) -> None:
    """A config setting every field reads back equal, but for the PIN, which is starred."""
    data = kitchen_config(
        two_devices=True,
        stove={"id": "cottage", "name": 'The "big" hob \\ upstairs'},
        safety={"alarm_after": "12.5s", "retry_max_interval": "750ms"},
        remote={"allow_relax": True, "pin": "2468", "relax_ttl": "1m5s"},
        daemon={"socket": str(tmp_path / "s"), "state_dir": str(tmp_path), "log_level": "debug"},
    )
    data["devices"][0].update(poll_interval="2s", response_time="20ms", timeout="3s", fault="slow")
    data["burners"][0].update(name="Left", cut_hold="7s")
    settings = settings_from_mapping(data)

    loaded = _round_trip(settings)

    assert loaded.remote.pin == SecretStr("********")
    assert loaded.model_copy(update={"remote": settings.remote}) == settings


def test_pin_from_file_round_trips(tmp_path: Path) -> None:
    """A PIN read from pin_file is shown by its file only, so the output loads as it was."""
    pin_file = tmp_path / "pin"
    pin_file.write_text("2468", encoding="utf-8")
    settings = settings_from_mapping(kitchen_config(remote={"pin_file": str(pin_file)}))

    assert "2468" not in to_toml(redacted(settings))
    assert _round_trip(settings) == settings


@given(st.text(max_size=40))
def test_any_name_round_trips_through_to_toml(name: str) -> None:
    """Whatever characters a stove's name holds, to_toml writes TOML that reads back to it."""
    settings = settings_from_mapping(kitchen_config(stove={"name": name}))
    assert tomllib.loads(to_toml(redacted(settings)))["stove"]["name"] == name


@pytest.mark.parametrize(
    ("trigger", "problem"),
    [
        ({"device": "nope", "channel": 3, "action": "off"}, "voice[0].device"),
        ({"device": "sim", "channel": 9, "action": "off"}, "voice[0].channel"),
        ({"device": "sim", "channel": 1, "action": "off"}, "not a spare button"),
        ({"device": "sim", "channel": 3, "action": "timer nope 5m"}, "no burner 'nope'"),
        ({"device": "sim", "channel": 3, "action": "boil left"}, "is not an action"),
        ({"device": "sim", "channel": 3, "action": "timer left"}, "timer BURNER DURATION"),
        ({"device": "sim", "channel": 3, "action": "timer left 2x"}, "not a duration"),
    ],
)
def test_voice_buttons_are_checked_at_load(trigger: dict[str, Any], problem: str) -> None:
    """A voice button naming a missing device, a wired channel or a bad action fails at load."""
    config = kitchen_config(voice=[trigger])
    config["devices"][0]["channels"] = 3
    with pytest.raises(ConfigError, match=re.escape(problem)):
        settings_from_mapping(config, source="f.toml")


def test_a_good_voice_button_loads() -> None:
    """A spare channel bound to a timer loads, with the action kept as written."""
    config = kitchen_config(voice=[{"device": "sim", "channel": 3, "action": "timer left 10m"}])
    config["devices"][0]["channels"] = 3
    assert settings_from_mapping(config).voice[0].action == "timer left 10m"


def test_environment_may_name_an_optional_section() -> None:
    """STOVECTL_SPEAKER__LANGUAGE names a setting, though [speaker] is optional."""
    assert unknown_environment({"STOVECTL_SPEAKER__LANGUAGE": "en"}) == []
    assert unknown_environment({"STOVECTL_SPEAKER__LANGAUGE": "en"}) == [
        "STOVECTL_SPEAKER__LANGAUGE"
    ]


@pytest.mark.parametrize("path", sorted(Path("config").glob("*.toml")), ids=str)
def test_every_shipped_config_loads(path: Path) -> None:
    """Each config in config/ loads as shipped, so its instructions work."""
    assert load_settings(path).burners


# -- sensors, failsafes, schedules ---------------------------------------------------------


def _sensor(sensor_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": sensor_id, "kind": kind, "source": "mqtt", "topic": f"t/{sensor_id}", **fields}


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        pytest.param({"sensors": [_sensor("f", "flame", burner="left")]},
                     "an mqtt sensor needs the broker", id="mqtt-sensor-without-broker"),
        pytest.param({"mqtt": {}, "sensors": [_sensor("f", "flame")]},
                     "a flame sensor names its burner", id="flame-without-burner"),
        pytest.param({"mqtt": {}, "sensors": [_sensor("g", "gas", burner="left")]},
                     "only flame sensors belong to a burner", id="gas-with-burner"),
        pytest.param({"mqtt": {}, "sensors": [_sensor("f", "flame", burner="middle")]},
                     "sensors[0] (id 'f').burner: no burner 'middle'", id="unknown-burner"),
        pytest.param({"mqtt": {}, "sensors": [_sensor("a", "flame", burner="left"),
                                              _sensor("b", "flame", burner="left")]},
                     "burner 'left' has flame sensor 'a' already", id="two-flame-sensors"),
        pytest.param({"mqtt": {}, "sensors": [_sensor("a", "gas"), _sensor("a", "smoke")]},
                     "sensors: two have the id 'a'", id="duplicate-sensor"),
        pytest.param({"mqtt": {}, "sensors": [_sensor("f", "flame", burner="left",
                                                      on_above=60, off_below=80)]},
                     "off_below (80) must not be above on_above (60)", id="hysteresis"),
        pytest.param({"mqtt": {}, "sensors": [_sensor("g", "gas", topic="a/#")]},
                     "without '#', '+' or NUL", id="wildcard-topic"),
        pytest.param({"sensors": [{"id": "g", "kind": "gas", "source": "miot",
                                   "host": "127.0.0.1", "siid": 2, "piid": 1}]},
                     "needs its device's token", id="miot-without-token"),
        pytest.param({"unattended": {}}, "needs at least one presence sensor",
                     id="unattended-without-presence"),
        pytest.param({"mqtt": {}, "sensors": [_sensor("m", "presence")],
                      "unattended": {"presence": ["door"]}},
                     "'door' is not a presence sensor", id="unattended-unknown-presence"),
        pytest.param({"failsafe": {"max_on": "5m", "warn_before": "5m"}},
                     "warn_before (5m) must be shorter than max_on (5m)", id="warn-too-long"),
        pytest.param({"schedules": [{"id": "n", "cron": "0 25 * * *", "action": "off"}]},
                     "cron '0 25 * * *' is not a crontab expression", id="bad-cron"),
        pytest.param({"schedules": [{"id": "n", "cron": "0 23 * * *", "action": "off",
                                     "time_zone": "Mars/Olympus"}]},
                     "'Mars/Olympus' is not a known time zone", id="bad-zone"),
        pytest.param({"schedules": [{"id": "n", "cron": "0 23 * * *", "action": "off",
                                     "burners": ["middle"]}]},
                     "schedules[0].burners: no burner 'middle'", id="schedule-burner"),
        pytest.param({"schedules": [{"id": "n", "cron": "0 23 * * *", "action": "off",
                                     "reason": "away"}]},
                     "reason is for lock schedules only", id="reason-for-off"),
    ],
)
def test_sensor_failsafe_and_schedule_mistakes_are_named(
    sections: dict[str, Any], expected: str
) -> None:
    """Mistakes in sensors, failsafes and schedules are config errors that say what is wrong."""
    assert expected in refusal(kitchen_config(**sections))


def test_a_burner_max_on_overrides_the_failsafe_default() -> None:
    """max_on is the burner's own when given, else [failsafe] max_on; 0s turns it off."""
    data = kitchen_config(failsafe={"max_on": "2h"})
    data["burners"][0]["max_on"] = "30m"
    data["burners"][1]["max_on"] = "0s"
    settings = settings_from_mapping(data)
    assert settings.max_on("left") == 1800.0
    assert settings.max_on("right") == 0.0
    assert settings_from_mapping(kitchen_config()).max_on("left") == 3 * 3600.0


def test_miot_sensors_on_one_device_must_share_its_token() -> None:
    """A MiOT sensor on a relay's host (or another sensor's) with another token is refused."""
    relay = {"kind": "miio", "id": "relay", "host": "127.0.0.9", "model": "generic.relay.2",
             "token": "00112233445566778899aabbccddeeff"}
    sensor = {"id": "gas", "kind": "gas", "source": "miot", "host": "127.0.0.9", "siid": 5,
              "piid": 1, "token": "ffeeddccbbaa99887766554433221100"}
    message = refusal(kitchen_config(
        devices=[relay], sensors=[sensor],
        burners=[{"id": "left", "device": "relay", "channel": 1}],
    ))
    assert "sensors[0] (id 'gas').token: device 'relay' is on the same device" in message
