"""MQTT topic names: the layout of DESIGN §4, and commands told apart from everything else."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stovectl.mqtt.topics import (
    Topics,
    discovery_config_topic,
    ha_status_topic,
)
from stovectl.settings import settings_from_mapping
from stovectl.settings.types import ID_PATTERN
from tests.support.kitchen import kitchen_config

BASE = "stovectl/kitchen"
burner_ids = st.from_regex(ID_PATTERN, fullmatch=True)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the host's STOVECTL_… variables out of the settings these tests build."""
    for name in list(os.environ):
        if name.upper().startswith("STOVECTL_"):
            monkeypatch.delenv(name)


def test_topics_follow_the_documented_layout() -> None:
    """Status, state, commands, events, device availability, sensor states and the hazard
    latch sit where DESIGN §4 and the README say."""
    topics = Topics(BASE)

    assert topics.status == "stovectl/kitchen/status"
    assert topics.burner_state("left") == "stovectl/kitchen/left/state"
    assert topics.burner_set("left") == "stovectl/kitchen/left/set"
    assert topics.all_set == "stovectl/kitchen/all/set"
    assert topics.set_filter == "stovectl/kitchen/+/set"
    assert topics.events == "stovectl/kitchen/events"
    assert topics.device_availability("relay") == "stovectl/kitchen/devices/relay/availability"
    assert topics.sensor_state("hall_gas") == "stovectl/kitchen/sensors/hall_gas/state"
    assert topics.hazard == "stovectl/kitchen/hazard"


def test_base_topic_defaults_to_the_stove_id_and_follows_the_config() -> None:
    """Without a configured base topic the stove id picks it; a configured one wins."""
    default = settings_from_mapping(kitchen_config(stove={"id": "flat"}, mqtt={}))
    configured = settings_from_mapping(kitchen_config(mqtt={"base_topic": "home/hob"}))

    assert Topics.from_settings(default).status == "stovectl/flat/status"
    assert Topics.from_settings(configured).burner_set("left") == "home/hob/left/set"


@pytest.mark.parametrize("base", ["", "/stovectl", "stovectl/", "a/+/b", "a/#", "a\0b"])
def test_unusable_base_topics_are_refused(base: str) -> None:
    """A base topic that is empty, has wildcards or stray slashes never builds topics."""
    with pytest.raises(ValueError, match="base topic"):
        Topics(base)


@pytest.mark.parametrize(
    ("topic", "burner"),
    [
        ("stovectl/kitchen/left/set", "left"),
        ("stovectl/kitchen/all/set", "all"),
        ("stovectl/kitchen/Left/set", "Left"),
    ],
)
def test_set_topics_name_their_burner(topic: str, burner: str) -> None:
    """A command topic gives the name it addresses as it stands, for the controller to judge."""
    assert Topics(BASE).burner_of_set_topic(topic) == burner


@pytest.mark.parametrize(
    "topic",
    [
        "stovectl/kitchen/left/state",
        "stovectl/kitchen/status",
        "stovectl/kitchen/events",
        "stovectl/kitchen//set",
        "stovectl/kitchen/set",
        "stovectl/kitchen/a/b/set",
        "stovectl/kitchen2/left/set",
        "other/kitchen/left/set",
        "stovectl/kitchen/left/set/more",
        "stovectl/kitchen/devices/relay/availability",
        "stovectl/kitchen/sensors/hall_gas/state",
        "stovectl/kitchen/hazard",
    ],
)
def test_other_topics_are_not_commands(topic: str) -> None:
    """State, status, events, other stoves and deeper or empty levels are not command topics."""
    assert Topics(BASE).burner_of_set_topic(topic) is None


@given(burner_ids)
def test_every_burner_id_round_trips_through_its_set_topic(burner: str) -> None:
    """For any valid burner id, its command topic parses back to it and its state topic does not."""
    topics = Topics(BASE)

    assert topics.burner_of_set_topic(topics.burner_set(burner)) == burner
    assert topics.burner_of_set_topic(topics.burner_state(burner)) is None


@given(burner_ids, burner_ids)
def test_sensor_and_hazard_topics_never_meet_a_burners(burner: str, sensor: str) -> None:
    """No sensor's state topic, nor the hazard topic, is any burner's state or command topic."""
    topics = Topics(BASE)
    burner_topics = {topics.burner_state(burner), topics.burner_set(burner)}

    assert topics.sensor_state(sensor) not in burner_topics
    assert topics.hazard not in burner_topics
    assert topics.burner_of_set_topic(topics.sensor_state(sensor)) is None


def test_discovery_topics_live_under_the_prefix() -> None:
    """Entity configs, their wildcard and Home Assistant's status topic sit under the prefix."""
    assert discovery_config_topic("homeassistant", "lock", "x_lock") == (
        "homeassistant/lock/x_lock/config"
    )
    assert ha_status_topic("homeassistant") == "homeassistant/status"
