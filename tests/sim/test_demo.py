"""The narrated demo plays the whole story on the simulated stove."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from stovectl.sim.demo import narrate


def test_the_demo_story_holds(virtual: Callable[[Awaitable[Any]], Any], tmp_path: Path) -> None:
    """Lit, cut by a countdown, re-armed, relit, locked (lighting fails), unlocked, relit, left
    unattended (warned, cut, confirmed by the flame going out), then a gas leak locks the hob
    until it clears and a local unlock lifts it."""
    lines: list[str] = []
    assert virtual(narrate(tmp_path, 1.0, lines.append)) is True
    text = "\n".join(lines)
    assert "countdown fired: relay cut, verified" in text
    assert "It will not stay lit: the open loop cannot hold the valve." in text
    assert "warning (unattended)" in text and "shutoff (unattended): verified" in text
    assert "left locked (hazard), verified, right locked (hazard), verified" in text
    assert "a remote unlock (MQTT, even with a PIN): refused" in text
    assert "UNEXPECTED" not in text
    history = lines[lines.index("\nHistory of the left burner:") + 1:]
    kinds = [line.split()[0] for line in history if not line.split()[0].startswith("flame_o")]
    assert kinds == ["countdown_set", "countdown_fire", "shutoff", "rearm", "lock", "unlock",
                     "warning", "shutoff", "rearm", "lock", "refused", "refused", "unlock"]
    assert sum(line.split()[0] == "flame_out" for line in history) == 3
