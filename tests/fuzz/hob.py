"""The hob as the fuzz tests see it: a controller's intents, its relays, and a state to return to.

Every example starts from the same ``Baseline`` (say, left locked for a child,
right armed with ten minutes on its countdown), restored through the local
(``cli``) source that may do anything, so each example is judged on its own.
``snapshot`` is what status shows of each burner's intent; ``durability_problems``
checks rule 6: what the controller intends is what the store would restore.
All of it runs on the controller's own loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stovectl.core.controller import BurnerController
from stovectl.core.events import Event, Kind
from stovectl.core.store import Store
from stovectl.devices.base import RelayState
from stovectl.settings import Settings

REARM_WITHIN_SECONDS = 30.0
BURNERS = ("left", "right")


@dataclass(frozen=True)
class View:
    """One burner's intent, as status shows it."""

    mode: str
    reason: str | None
    due: float | None
    """Countdown due, wall-clock seconds."""


Snapshot = dict[str, View]


@dataclass(frozen=True)
class Intent:
    """What a burner is returned to before each example."""

    lock_reason: str | None = None
    """Locked for this reason; None: armed."""
    countdown_seconds: float | None = None


Baseline = dict[str, Intent]


class Hob:
    """A controller, the truth of its relays, and the baseline it is reset to."""

    def __init__(
        self,
        settings: Settings,
        controller: Callable[[], BurnerController],
        store: Callable[[], Store],
        relay_state: Callable[[str, int], RelayState],
        baseline: Baseline,
    ) -> None:
        self.settings = settings
        self._controller = controller
        self._store = store
        self._relay_state = relay_state
        self.baseline = baseline
        self.events: list[Event] = []
        self._subscribed: BurnerController | None = None

    @property
    def controller(self) -> BurnerController:
        controller = self._controller()
        if controller is not self._subscribed:
            controller.events.subscribe(self.events.append)
            self._subscribed = controller
        return controller

    def row(self, burner: str) -> dict[str, Any]:
        return next(r for r in self.controller.status() if r["id"] == burner)

    def snapshot(self) -> Snapshot:
        views = {}
        for row in self.controller.status():
            countdown = row["countdown"]
            views[row["id"]] = View(row["mode"], row["lock_reason"],
                                    None if countdown is None else countdown["due"])
        return views

    def relay_cut(self) -> dict[str, bool]:
        """Each burner's relay as a multimeter at the device reads it: cut or not."""
        cut = {}
        for burner in BURNERS:
            spec = self.settings.burner(burner)
            cut[burner] = self._relay_state(spec.device, spec.channel) is RelayState(
                spec.cut_state)
        return cut

    async def restore(self) -> None:
        """Return every burner to its baseline through the local source."""
        controller = self.controller
        for burner, intent in self.baseline.items():
            row = self.row(burner)
            if row["mode"] == "pulse":
                await self._rearmed(burner)
                row = self.row(burner)
            if intent.lock_reason is None and row["mode"] == "locked":
                await controller.unlock([burner], "cli")
            elif intent.lock_reason is not None and (
                row["mode"] != "locked" or row["lock_reason"] != intent.lock_reason
            ):
                if row["mode"] == "locked":
                    await controller.unlock([burner], "cli")
                await controller.lock([burner], "cli", intent.lock_reason)
            countdown = self.row(burner)["countdown"]
            wanted = intent.countdown_seconds
            if countdown is not None and (
                wanted is None or countdown["source"] != "cli"
                or countdown["remaining"] < wanted / 2
            ):
                controller.cancel_countdown([burner], "cli")
                countdown = None
            if wanted is not None and countdown is None:
                controller.set_countdown([burner], wanted, "cli")
        self.check_baseline()

    def check_baseline(self) -> None:
        cut = self.relay_cut()
        for burner, intent in self.baseline.items():
            row = self.row(burner)
            mode = "armed" if intent.lock_reason is None else "locked"
            assert (row["mode"], row["lock_reason"]) == (mode, intent.lock_reason), row
            assert cut[burner] is (intent.lock_reason is not None), (burner, row)
            assert (row["countdown"] is None) is (intent.countdown_seconds is None), row

    async def _rearmed(self, burner: str) -> None:
        done = asyncio.get_running_loop().create_future()

        def watch(event: Event) -> None:
            if event.kind is Kind.REARM and event.burner == burner and not done.done():
                done.set_result(event)

        unsubscribe = self.controller.events.subscribe(watch)
        try:
            if self.row(burner)["mode"] == "pulse":
                await asyncio.wait_for(done, REARM_WITHIN_SECONDS)
        finally:
            unsubscribe()

    def durability_problems(self) -> list[str]:
        """Rule 6: each burner's intent and countdown are on disk as the controller holds them."""
        store = self._store()
        intents, timers = store.intents(), store.timers()
        problems = []
        for row in self.controller.status():
            burner = str(row["id"])
            intent = intents.get(burner)
            if intent is None:
                if row["mode"] != "armed":
                    problems.append(f"{burner} is {row['mode']} but no intent is stored")
            elif intent.mode != row["mode"] or (
                row["mode"] == "locked" and intent.reason != row["lock_reason"]
            ):
                problems.append(f"{burner}: stored {intent}, controller {row['mode']} "
                                f"{row['lock_reason']}")
            countdown = row["countdown"]
            timer = timers.get((burner, "countdown"))
            if (countdown is None) != (timer is None):
                problems.append(f"{burner}: countdown {countdown}, stored {timer}")
            elif countdown is not None and timer is not None and abs(
                timer.due - countdown["due"]
            ) > 1e-3:
                problems.append(f"{burner}: countdown due {countdown}, stored {timer.due}")
        return problems
