"""Bad MQTT commands, through the real bridge and controller: answered, recorded, harmless.

Two harnesses carry the same payloads (``mqtt_oracle.RECIPES``) to
``<base>/<burner>/set`` and ``<base>/all/set``. For many examples, the
bridge sits on an ``InProcessBroker`` in front of a controller on the simulated
stove, on virtual time, once with remote relaxing off and once with it allowed
under a PIN. For the real path, the daemon as ``stovectl run`` builds it talks
to a real Mosquitto, and a paho client sends. After every example: a reply came
with its correlation data; each refusal is coded, names its problem, is in the
history and on ``<base>/events``; each valid cut was obeyed and verified at the
relay; no lock was lifted and no countdown moved later or ended unless rule 5
allows it; the store holds what the controller intends; the daemon published
nothing on a command topic and nothing retained but state; no PIN came back;
nothing was logged as an error or with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import tempfile
import threading
import time
import tomllib
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from stovectl.core.events import Event, Kind
from stovectl.daemon.app import Daemon
from stovectl.mqtt.bridge import MqttBridge
from stovectl.mqtt.connection import Message
from stovectl.settings import Settings, settings_from_mapping
from tests.fuzz.campaign import LogGuard, Tally, budget
from tests.fuzz.hob import BURNERS, Baseline, Hob, Intent
from tests.fuzz.inprocess_broker import InProcessBroker, Published
from tests.fuzz.mqtt_oracle import Delivery, Judge, Policy, Verdict
from tests.fuzz.mqtt_payloads import (
    PIN,
    RECIPES,
    RELAXING_RECIPES,
    TOPIC_NAMES,
    TTL_SECONDS,
    Recipe,
)
from tests.support.broker import Broker, running_broker
from tests.support.kitchen import Kitchen, kitchen_config
from tests.support.mqtt_probe import Probe
from tests.support.virtual_time import VirtualTimeLoop

T = TypeVar("T")
STOVE = "fuzzhob"
BASE = f"stovectl/{STOVE}"
REPLIES = "fuzz/replies"
REPLY_WITHIN_SECONDS = 10.0
RETAINED_TOPICS = (f"{BASE}/", "homeassistant/")
"""Where the daemon may publish retained: its state topics, and discovery."""

STRICT_BASELINE: Baseline = {
    "left": Intent(lock_reason="child"), "right": Intent(countdown_seconds=600.0)}
"""One burner locked, one armed and counting down: cuts, locks and countdowns all show."""
LOCKED_BASELINE: Baseline = {
    "left": Intent(lock_reason="hazard"),
    "right": Intent(lock_reason="child", countdown_seconds=600.0),
}
"""Both locked, left by a hazard, which only a local unlock may clear (rule 8): for the relaxed
hob, whose unlocks then have a lock to lift or to keep; and on the real path, where no cut
then waits out a re-arm in real time."""

topic_names = st.sampled_from(TOPIC_NAMES)
retained = st.sampled_from([False, False, False, True])
expiries = st.none() | st.none() | st.sampled_from([0, 1, 30, 3600])


def check(verdict: Verdict, delivery: Delivery, published: list[Published],
          events: list[Event], durability: list[str], guard: LogGuard, tally: Tally) -> None:
    """Every invariant of an example, beyond the judge's: events, wire, disk (``durability``:
    Hob.durability_problems, taken on the daemon's loop), logs."""
    problems = list(verdict.problems)
    reply = delivery.reply
    if reply.get("ok") is False and reply["error"]["code"] != "duplicate":
        code, message = reply["error"]["code"], reply["error"]["message"]
        recorded = [e for e in events if e.kind is Kind.REFUSED and e.reason == code]
        if not any(e.message == message and e.source == "mqtt" for e in recorded):
            problems.append(f"refusal {code} is not in the history: {events}")
        on_wire = [json.loads(p.payload) for p in published if p.topic == f"{BASE}/events"]
        if not any(e["kind"] == "refused" and e["reason"] == code for e in on_wire):
            problems.append(f"refusal {code} was not published on {BASE}/events")
    for p in published:
        if p.topic.endswith("/set"):
            problems.append(f"the daemon published on a command topic: {p}")
        if p.retain and not p.topic.startswith(RETAINED_TOPICS):
            problems.append(f"the daemon published retained outside its state: {p}")
        if PIN.encode() in p.payload:
            problems.append(f"the PIN went out on {p.topic}: {p.payload[:200]!r}")
    for event in events:
        if event.kind is Kind.ALARM:
            problems.append(f"an alarm on a healthy relay: {event}")
        if event.kind is Kind.REARM and delivery.after[str(event.burner)].mode == "locked":
            problems.append(f"re-armed a burner that is locked (rule 4): {event}")
    problems += durability
    problems += [f"logged: {line}" for line in guard.take()]
    assert not problems, "\n".join([f"payload {delivery.payload[:300]!r} on "
                                    f"{delivery.burner}/set:", *problems])
    for tolerated in verdict.tolerated:
        tally.saw(tolerated)
    tally.saw(verdict.label)


# -- in process: the bridge on an InProcessBroker, on virtual time ----------------------


def hob_settings(policy: Policy, **sections: Any) -> Settings:
    config = kitchen_config(
        stove={"id": STOVE, "name": "Fuzz hob"},
        mqtt={"discovery": False},
        remote={"allow_relax": policy.allow_relax, "pin": policy.pin,
                "relax_ttl": f"{TTL_SECONDS:g}s"},
        **sections,
    )
    for burner in config["burners"]:
        burner["cut_hold"] = "2s"
    return settings_from_mapping(config)


class InProcessHob:
    """The real MqttBridge and controller, a simulated stove, an InProcessBroker."""

    def __init__(self, policy: Policy, baseline: Baseline, guard: LogGuard) -> None:
        self.policy = policy
        self.baseline = baseline
        self.guard = guard
        self.judge = Judge(policy)
        self.settings = hob_settings(policy)
        self.folder = Path(tempfile.mkdtemp(prefix="stv-fuzz-mqtt"))
        self.runner = asyncio.Runner(loop_factory=VirtualTimeLoop)
        self._correlations = itertools.count(1)
        self.runner.run(self._start())

    async def _start(self) -> None:
        self.kitchen = Kitchen(self.settings, self.folder)
        await self.kitchen.start()
        self.broker = InProcessBroker()
        self.bridge = MqttBridge(self.settings, self.kitchen.controller, self.broker,  # type: ignore[arg-type]  # a stand-in
                                 self.kitchen.store)
        self.bridge.attach()
        await self.bridge.serve()
        self.hob = Hob(
            self.settings, lambda: self.kitchen.controller, lambda: self.kitchen.store,
            lambda device, channel: self.kitchen.world.devices[device].state(channel),
            self.baseline,
        )

    def close(self) -> None:
        self.runner.run(self.bridge.close())
        self.runner.run(self.kitchen.close())
        self.runner.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def example(self, burner: str, recipe: Recipe, retain: bool, expiry: int | None,
                tally: Tally) -> None:
        delivery, published, events, durability = self.runner.run(
            self._exchange(burner, recipe, retain, expiry))
        check(self.judge(delivery), delivery, published, events, durability, self.guard, tally)

    async def _exchange(
        self, burner: str, recipe: Recipe, retain: bool, expiry: int | None
    ) -> tuple[Delivery, list[Published], list[Event], list[str]]:
        await self.hob.restore()
        before = self.hob.snapshot()
        now = self.kitchen.controller.now()
        payload = recipe.build(now)
        correlation = f"c{next(self._correlations)}".encode()
        published_from, events_from = len(self.broker.published), len(self.hob.events)
        self.broker.deliver(Message(
            f"{BASE}/{burner}/set", payload, retain=retain, response_topic=REPLIES,
            correlation_data=correlation, message_expiry=expiry,
        ))
        try:
            answer = await asyncio.wait_for(self.broker.next_publish(
                lambda p: p.topic == REPLIES and p.correlation_data == correlation,
                published_from,
            ), REPLY_WITHIN_SECONDS)
        except TimeoutError:
            raise AssertionError(f"no reply to {payload[:200]!r} on {burner}/set") from None
        assert not answer.retain, "a reply was retained"
        events = self.hob.events[events_from:]
        delivery = Delivery(
            burner, payload, retain, expiry, now, before, self.hob.snapshot(),
            json.loads(answer.payload), self.hob.relay_cut(),
            {str(e.burner) for e in events if e.kind is Kind.COUNTDOWN_FIRE},
        )
        published = self.broker.published[published_from:]
        return delivery, published, events, self.hob.durability_problems()


@pytest.fixture(scope="module")
def strict_hob(log_guard: LogGuard) -> Iterator[InProcessHob]:
    hob = InProcessHob(Policy(allow_relax=False), STRICT_BASELINE, log_guard)
    yield hob
    hob.close()


@pytest.fixture(scope="module")
def relaxed_hob(log_guard: LogGuard) -> Iterator[InProcessHob]:
    hob = InProcessHob(Policy(allow_relax=True), LOCKED_BASELINE, log_guard)
    yield hob
    hob.close()


@budget(bounded=400, soak=5_000)
@given(burner=topic_names, recipe=RECIPES, retain=retained, expiry=expiries)
def test_no_payload_relaxes_a_strict_hob(
    strict_hob: InProcessHob, tally: Tally, burner: str, recipe: Recipe, retain: bool,
    expiry: int | None,
) -> None:
    """With remote relaxing off, whatever arrives is answered; only cuts and shorter countdowns
    change anything, and cuts always work."""
    tally.tried("in-process strict", recipe.kind)
    strict_hob.example(burner, recipe, retain, expiry, tally)


@budget(bounded=400, soak=5_000)
@given(burner=topic_names, recipe=RELAXING_RECIPES, retain=retained, expiry=expiries)
def test_a_relaxed_hob_relaxes_only_for_a_fresh_command_with_the_pin(
    relaxed_hob: InProcessHob, tally: Tally, burner: str, recipe: Recipe, retain: bool,
    expiry: int | None,
) -> None:
    """With remote relaxing allowed, an unlock needs the PIN and an age within the TTL, a cancel
    or extension the age; a hazard lock is never lifted; everything else as when strict."""
    tally.tried("in-process relaxed", recipe.kind)
    relaxed_hob.example(burner, recipe, retain, expiry, tally)


# -- the real path: the daemon and a real Mosquitto ------------------------------------


def broker_settings(broker: Broker) -> Settings:
    text = f"""\
[stove]
id = "{STOVE}"
name = "Fuzz hob"

[[devices]]
id = "sim"
kind = "simulated"
channels = 2
poll_interval = "200ms"
response_time = "2ms"

[[burners]]
id = "left"
device = "sim"
channel = 1
cut_hold = "2s"

[[burners]]
id = "right"
device = "sim"
channel = 2
cut_state = "off"
cut_hold = "2s"

[remote]
pin = "{PIN}"
relax_ttl = "{TTL_SECONDS:g}s"

[mqtt]
host = "{broker.host}"
port = {broker.port}
client_id = "stovectl-fuzz"
discovery = false
"""
    return settings_from_mapping(tomllib.loads(text), source="<fuzz>")


class BrokerHob:
    """The daemon on its own thread's loop, on a real broker, and a paho client that asks."""

    def __init__(self, broker: Broker, folder: Path) -> None:
        self.settings = broker_settings(broker)
        self.judge = Judge(Policy(allow_relax=False), slack_seconds=REPLY_WITHIN_SECONDS)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-daemon",
                                       daemon=True)
        self.daemon = Daemon(self.settings, folder / "s", folder / "state")
        self.hob = Hob(
            self.settings, lambda: self.daemon.controller, lambda: self.daemon.store,
            lambda device, channel: self.daemon.world.devices[device].state(channel),
            LOCKED_BASELINE,
        )
        self._correlations = itertools.count(1)
        self.remote = Probe(broker)

    def __enter__(self) -> BrokerHob:
        self.thread.start()
        self.call(self.daemon.start())
        self.remote.start()
        self.remote.connack()
        self.remote.subscribe(REPLIES)
        self.remote.subscribe(f"{BASE}/events")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.remote.close()
        self.call(self.daemon.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(REPLY_WITHIN_SECONDS)
        self.loop.close()

    def call(self, coroutine: Awaitable[T]) -> T:
        async def run() -> T:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(REPLY_WITHIN_SECONDS)

    def example(self, burner: str, recipe: Recipe, guard: LogGuard, tally: Tally) -> None:
        self.call(self.hob.restore())
        before = self.call(self._snapshot())
        events_from = self.call(self._count_events())
        now = time.time()
        payload = recipe.build(now)
        reply, on_events = self._ask(burner, payload)
        after, relay_cut, events, durability = self.call(self._after(events_from))
        delivery = Delivery(
            burner, payload, False, None, now, before, after, reply, relay_cut,
            {str(e.burner) for e in events if e.kind is Kind.COUNTDOWN_FIRE},
        )
        verdict = self.judge(delivery)
        if reply.get("ok") is False and reply["error"]["code"] != "duplicate":
            code = reply["error"]["code"]
            if not any(e.get("reason") == code for e in on_events):
                on_events += self._events_until(code)
        published = [Published(f"{BASE}/events", json.dumps(e).encode(), False, None)
                     for e in on_events]
        check(verdict, delivery, published, events, durability, guard, tally)

    async def _snapshot(self) -> Any:
        return self.hob.snapshot()

    async def _count_events(self) -> int:
        return len(self.hob.events)

    async def _after(self, events_from: int) -> Any:
        return (self.hob.snapshot(), self.hob.relay_cut(), self.hob.events[events_from:],
                self.hob.durability_problems())

    def _ask(self, burner: str, payload: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Publish a command with a response topic; its reply, and the events seen meanwhile."""
        correlation = f"c{next(self._correlations)}".encode()
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho's hint gap
        properties.ResponseTopic = REPLIES
        properties.CorrelationData = correlation
        self.remote.client.publish(f"{BASE}/{burner}/set", payload, qos=1,
                                   properties=properties)
        events = []
        deadline = time.monotonic() + REPLY_WITHIN_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            message = self.remote.next_message(left)
            if message.topic == f"{BASE}/events":
                events.append(json.loads(message.payload))
            elif message.properties.CorrelationData == correlation:
                return json.loads(message.payload), events
        raise AssertionError(f"no reply to {payload[:200]!r} on {burner}/set")

    def _events_until(self, code: str) -> list[dict[str, Any]]:
        """Events from the broker until a refusal with ``code`` (published after the reply)."""
        events = []
        with contextlib.suppress(Exception):  # none in time: check() says what is missing
            deadline = time.monotonic() + REPLY_WITHIN_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                event = json.loads(self.remote.next_message(left).payload)
                events.append(event)
                if event.get("kind") == "refused" and event.get("reason") == code:
                    break
        return events


@pytest.fixture(scope="module")
def broker_hob(log_guard: LogGuard) -> Iterator[tuple[BrokerHob, LogGuard]]:
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(running_broker("anonymous"))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sf-", dir="/tmp")))
        yield stack.enter_context(BrokerHob(broker, folder)), log_guard


@budget(bounded=60, soak=1_000)
@given(burner=topic_names, recipe=RECIPES)
def test_through_mosquitto_no_payload_lifts_a_lock_or_goes_unanswered(
    broker_hob: tuple[BrokerHob, LogGuard], tally: Tally, burner: str, recipe: Recipe,
) -> None:
    """Through a real broker to the daemon as `stovectl run` builds it: every payload is answered
    on the response topic, refusals reach <base>/events, and both locks and the countdown hold."""
    hob, guard = broker_hob
    tally.tried("mosquitto", recipe.kind)
    hob.example(burner, recipe, guard, tally)


def test_the_hob_still_obeys_a_cut_after_the_campaign(
    strict_hob: InProcessHob, relaxed_hob: InProcessHob,
    broker_hob: tuple[BrokerHob, LogGuard], tally: Tally,
) -> None:
    """After every bad payload, a plain OFF on all/set still cuts every burner, verified."""
    off = Recipe("plain-word", raw=b"OFF")
    for hob in (strict_hob, relaxed_hob):
        hob.example("all", off, False, None, tally)
        assert hob.runner.run(_relays_cut(hob.hob)) == dict.fromkeys(BURNERS, True)
    broker, guard = broker_hob
    broker.example("all", off, guard, tally)
    assert broker.call(_relays_cut(broker.hob)) == dict.fromkeys(BURNERS, True)


async def _relays_cut(hob: Hob) -> dict[str, bool]:
    return hob.relay_cut()
