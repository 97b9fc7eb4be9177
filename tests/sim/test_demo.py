"""The narrated demo plays the whole story on the simulated stove."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from stovectl.sim.demo import narrate


def test_the_demo_story_holds(virtual: Callable[[Awaitable[Any]], Any], tmp_path: Path) -> None:
    """Lit, cut by a countdown, re-armed, relit, locked (lighting fails), unlocked, relit."""
    lines: list[str] = []
    assert virtual(narrate(tmp_path, 1.0, lines.append)) is True
    text = "\n".join(lines)
    assert "countdown fired: relay cut, verified" in text
    assert "It will not stay lit: the open loop cannot hold the valve." in text
    assert "UNEXPECTED" not in text
    kinds = [line.split()[0] for line in lines[lines.index("\nHistory:") + 1:]]
    assert kinds == ["countdown_set", "countdown_fire", "shutoff", "rearm", "lock", "unlock"]
