"""``stovectl demo``: the simulated stove and the real controller, narrated.

Runs in one process with a throw-away state folder: a burner is lit by hand, a
countdown cuts it, it re-arms and is lit again, a lock cuts it and lighting
fails, an unlock lets it light; then the cook walks away from a lit burner and
the unattended failsafe warns and cuts it, and a gas leak locks the whole hob
until it clears and somebody unlocks it by hand. Every step is the real
controller acting on the simulated relays, sensors and stove physics, so what
it prints is what happened.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path

import click

from stovectl.core.controller import BurnerController
from stovectl.core.events import Event, Kind, Result
from stovectl.core.store import Store
from stovectl.errors import CommandRefused
from stovectl.settings import Settings, settings_from_mapping
from stovectl.sim.stove import BurnerSnapshot, StovePhysics
from stovectl.sim.world import SimulatedWorld

CUT_HOLD_SECONDS = 2.0
COUNTDOWN_SECONDS = 3.0
UNATTENDED_AFTER_SECONDS = 6.0
UNATTENDED_GRACE_SECONDS = 3.0


def demo_settings() -> Settings:
    return settings_from_mapping({
        "stove": {"id": "demo", "name": "Demo hob"},
        "devices": [{"kind": "simulated", "id": "sim", "channels": 2}],
        "burners": [
            {"id": "left", "device": "sim", "channel": 1, "cut_state": "on",
             "cut_hold": f"{CUT_HOLD_SECONDS}s"},
            {"id": "right", "device": "sim", "channel": 2, "cut_state": "on",
             "cut_hold": f"{CUT_HOLD_SECONDS}s"},
        ],
        "safety": {"alarm_after": "3s"},
        "sensors": [
            {"id": "left_flame", "kind": "flame", "burner": "left", "source": "simulated"},
            {"id": "right_flame", "kind": "flame", "burner": "right", "source": "simulated"},
            {"id": "motion", "kind": "presence", "source": "simulated", "initial": True},
            {"id": "gas", "kind": "gas", "source": "simulated"},
        ],
        "failsafe": {"flame_out_within": "30s"},
        "unattended": {"after": f"{UNATTENDED_AFTER_SECONDS:g}s",
                       "grace": f"{UNATTENDED_GRACE_SECONDS:g}s"},
    }, source="<demo>")


def describe(snapshot: BurnerSnapshot) -> str:
    flame = "FLAME ON" if snapshot.flame else "no flame"
    loop = "loop closed" if snapshot.loop_closed else "loop OPEN"
    return (f"{flame}, valve {snapshot.valve}, thermocouple {snapshot.thermocouple_c:.0f} °C, "
            f"{loop}")


class Demo:
    def __init__(self, state_dir: Path, pace: float, say: Callable[[str], None]) -> None:
        settings = demo_settings()
        physics = StovePhysics(heat_time_constant_s=2.5 * pace, cool_time_constant_s=6 * pace)
        # The stove runs on the event loop's clock, like the controller's deadlines.
        self.world = SimulatedWorld(settings, asyncio.get_running_loop().time, physics)
        self.store = Store(state_dir / "demo.db")
        self.store.open()
        self.controller = BurnerController(settings, self.world.devices, self.store)
        self.pace = pace
        self.say = say
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self.controller.events.subscribe(self._events.put_nowait)

    def stove(self) -> str:
        return describe(self.world.stove.snapshot("left"))

    async def wait_for(self, kind: Kind, within: float, burner: str | None = "left") -> Event:
        async with asyncio.timeout(within):
            while True:
                event = await self._events.get()
                if event.kind is kind and event.burner == burner:
                    return event

    async def light(self, hold_seconds: float, burner: str = "left") -> bool:
        stove = self.world.stove
        self.say(f"  (a hand pushes the {burner} knob and holds it for {hold_seconds:g} s)")
        stove.push_knob(burner)
        await asyncio.sleep(hold_seconds)
        self.say(f"  while held: {describe(stove.snapshot(burner))}")
        stove.release_knob(burner)
        await asyncio.sleep(0.5 * self.pace)
        self.say(f"  released:   {describe(stove.snapshot(burner))}")
        return stove.snapshot(burner).flame

    async def run(self) -> bool:
        say = self.say
        await self.controller.start()
        self.world.attach_sensors(self.controller.sensors)
        hold = 4.0 * self.pace
        say("1. Light the left burner by hand.")
        lit = await self.light(hold)
        say(f"\n2. $ stovectl timer left {COUNTDOWN_SECONDS:g}s")
        [outcome] = self.controller.set_countdown(["left"], COUNTDOWN_SECONDS, "cli", "demo")
        say(f"  {outcome.message}")
        shutoff = await self.wait_for(Kind.SHUTOFF, COUNTDOWN_SECONDS + 5)
        say(f"  countdown fired: relay cut, {shutoff.result} in {shutoff.latency_ms or 0:.0f} ms "
            f"(source {shutoff.source})")
        await asyncio.sleep(0.5)
        say(f"  stove: {self.stove()}")
        out_after_timer = not self.world.stove.snapshot("left").flame
        say(f"\n3. After cut_hold ({CUT_HOLD_SECONDS:g} s) the loop closes again.")
        await self.wait_for(Kind.REARM, CUT_HOLD_SECONDS + 5)
        say(f"  re-armed: {self.stove()}")
        say("  Re-arming never relights: gas stays off until someone lights it.")
        say("\n4. Light it again.")
        relit = await self.light(hold)
        say("\n5. $ stovectl lock left --reason child")
        [outcome] = await self.controller.lock(["left"], "cli", "child", "demo")
        say(f"  locked, {outcome.result} in {outcome.latency_ms or 0:.0f} ms")
        await asyncio.sleep(0.5)
        say(f"  stove: {self.stove()}")
        say("\n6. Try to light it while locked.")
        lit_while_locked = await self.light(hold + 2 * self.pace)
        say("  It will not stay lit: the open loop cannot hold the valve."
            if not lit_while_locked else "  UNEXPECTED: it stayed lit while locked")
        say("\n7. $ stovectl unlock left, then light it.")
        [outcome] = await self.controller.unlock(["left"], "cli", "demo")
        say(f"  unlocked, {outcome.result} in {outcome.latency_ms or 0:.0f} ms")
        lit_after_unlock = await self.light(hold)
        walked_away = await self.unattended()
        gas_story = await self.gas_leak(hold)
        say("\nHistory of the left burner:")
        for event in self.controller.history(burner="left"):
            say(f"  {event.kind:<16} {event.source:<10} {event.result or '':<9} "
                f"{event.message}")
        self.world.close_sensors()
        await self.controller.close()
        self.store.close()
        return (lit and out_after_timer and relit and not lit_while_locked and lit_after_unlock
                and walked_away and gas_story)

    async def unattended(self) -> bool:
        """The cook walks away from the lit left burner; the failsafe warns, then cuts."""
        say = self.say
        say(f"\n8. The cook leaves the kitchen; the left burner stays lit. The motion sensor "
            f"sees nobody.\n  [unattended] after = {UNATTENDED_AFTER_SECONDS:g}s, grace = "
            f"{UNATTENDED_GRACE_SECONDS:g}s (15m and 2m by default)")
        self.world.sensors["motion"].set(False)
        warning = await self.wait_for(Kind.WARNING, UNATTENDED_AFTER_SECONDS + 5)
        say(f"  warning ({warning.source}): {warning.message}")
        cut = await self.wait_for(Kind.SHUTOFF, UNATTENDED_GRACE_SECONDS + 5)
        say(f"  shutoff ({cut.source}): {cut.result}")
        out = await self.wait_for(Kind.FLAME_OUT, 10)
        say(f"  the flame sensor confirms it: {out.message}")
        say("  (the cook comes back)")
        self.world.sensors["motion"].set(True)
        return cut.source == "unattended" and not self.world.stove.snapshot("left").flame

    async def gas_leak(self, hold: float) -> bool:
        """Gas locks every burner; only a local unlock after it cleared lifts the lock."""
        say = self.say
        await self.wait_for(Kind.REARM, CUT_HOLD_SECONDS + 5)
        say("\n9. The right burner is lit; then the gas detector goes off.")
        relit = await self.light(hold, "right")
        self.world.sensors["gas"].set(True)
        locks = [await self.wait_for(Kind.LOCK, 5, burner) for burner in ("left", "right")]
        say("  " + ", ".join(f"{e.burner} locked ({e.reason}), {e.result}" for e in locks))
        await asyncio.sleep(0.5)
        say(f"  right: {describe(self.world.stove.snapshot('right'))}")
        refusals = []
        for source, who in (("mqtt", "a remote unlock (MQTT, even with a PIN)"),
                            ("cli", "$ stovectl unlock all (gas still detected)")):
            try:
                await self.controller.unlock(["all"], source, "demo", pin="0000",
                                             issued_at=self.controller.now())
            except CommandRefused as refusal:
                refusals.append(refusal.code)
                say(f"  {who}: refused: {refusal}")
        self.world.sensors["gas"].set(False)
        say("  (the window is opened; the detector clears: the hob stays locked)")
        say("  $ stovectl unlock all")
        outcomes = await self.controller.unlock(["all"], "cli", "demo")
        say("  " + ", ".join(f"{o.burner} {o.result}" for o in outcomes))
        return (relit and all(e.result is Result.VERIFIED for e in locks)
                and refusals == ["hazard_local_only", "hazard_active"]
                and all(o.result is Result.VERIFIED for o in outcomes))


async def narrate(state_dir: Path, pace: float, say: Callable[[str], None]) -> bool:
    """Build the demo on the running loop and play it; True if all went as it should."""
    return await Demo(state_dir, pace, say).run()


def run_demo(*, fast: bool = False) -> int:
    """Run the narrated scenario; 0 when the stove behaved as the rules say."""
    click.echo("stovectl demo: a simulated two-burner hob with relays in its thermocouple "
               f"loops.\ncut_hold is {CUT_HOLD_SECONDS:g} s here (5 s by default).\n")
    with tempfile.TemporaryDirectory(prefix="stovectl-demo-") as state:
        ok = asyncio.run(narrate(Path(state), 0.5 if fast else 1.0, click.echo))
    click.echo("\nEvery step behaved as it should." if ok else "\nSOMETHING WENT WRONG above.")
    return 0 if ok else 1
