"""Voice button actions, parsed like CLI commands."""

from __future__ import annotations

import pytest

from stovectl.core.voice import VoiceAction, parse_voice_action


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("off", VoiceAction("off", ("all",))),
        ("off left right", VoiceAction("off", ("left", "right"))),
        ("lock all", VoiceAction("lock", ("all",))),
        ("timer left 10m", VoiceAction("timer", ("left",), 600.0)),
        ("cancel right", VoiceAction("cancel", ("right",))),
        ("  timer   left 1h30m ", VoiceAction("timer", ("left",), 5400.0)),
    ],
)
def test_actions_parse(text: str, action: VoiceAction) -> None:
    """Each verb reads its burners and, for timer, its duration."""
    assert parse_voice_action(text) == action


@pytest.mark.parametrize(
    "text", ["", "boil", "timer", "timer left", "timer left 0s", "cancel", "cancel a b", "unlock"]
)
def test_bad_actions_are_refused(text: str) -> None:
    """Unknown verbs, missing parts and unlock (never from voice) are errors."""
    with pytest.raises(ValueError, match=r"write|not an action|longer than zero"):
        parse_voice_action(text)


def test_an_action_prints_back_readably() -> None:
    """str() of an action reads like the config."""
    assert str(parse_voice_action("timer left 90s")) == "timer left 90s"
