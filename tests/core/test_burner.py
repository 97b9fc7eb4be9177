"""One burner's intent, the relay state it wants, and what an observation of it means."""

from __future__ import annotations

from typing import Literal

import pytest

from stovectl.core.burner import Burner, Mode, Seen
from stovectl.devices.base import RelayState
from stovectl.settings import BurnerSettings

ON, OFF = RelayState.ON, RelayState.OFF


def burner(cut_state: Literal["on", "off"], mode: Mode = Mode.ARMED) -> Burner:
    return Burner(
        BurnerSettings(id="left", device="sim", channel=2, cut_state=cut_state), mode=mode
    )


@pytest.mark.parametrize(
    ("cut_state", "cut", "armed"), [("on", ON, OFF), ("off", OFF, ON)]
)
def test_wiring_decides_which_relay_state_cuts(
    cut_state: Literal["on", "off"], cut: RelayState, armed: RelayState
) -> None:
    """cut_state "on" (NC wiring) cuts with the relay on; "off" (NO wiring) with it off."""
    subject = burner(cut_state)

    assert subject.cut_relay is cut
    assert subject.armed_relay is armed
    assert subject.is_cut(cut) is True
    assert subject.is_cut(armed) is False
    assert subject.is_cut(None) is None


@pytest.mark.parametrize(
    ("cut_state", "mode", "wanted"),
    [
        ("on", Mode.ARMED, OFF),
        ("on", Mode.PULSE, ON),
        ("on", Mode.LOCKED, ON),
        ("off", Mode.ARMED, ON),
        ("off", Mode.PULSE, OFF),
        ("off", Mode.LOCKED, OFF),
    ],
)
def test_wanted_state_follows_mode_and_wiring(
    cut_state: Literal["on", "off"], mode: Mode, wanted: RelayState
) -> None:
    """An armed burner wants its loop closed; one in a shutoff pulse or locked wants it cut."""
    subject = burner(cut_state, mode)

    assert subject.wanted is wanted
    assert subject.wants_cut is (mode is not Mode.ARMED)


@pytest.mark.parametrize("cut_state", ["on", "off"])
@pytest.mark.parametrize(
    ("mode", "seen_cut", "meaning"),
    [
        (Mode.ARMED, False, Seen.AS_EXPECTED),
        (Mode.ARMED, True, Seen.EXTERNAL_CUT),
        (Mode.PULSE, True, Seen.AS_EXPECTED),
        (Mode.PULSE, False, Seen.REARMED_IN_HOLD),
        (Mode.LOCKED, True, Seen.AS_EXPECTED),
        (Mode.LOCKED, False, Seen.TAMPER),
    ],
)
def test_classify_every_mode_and_observation(
    cut_state: Literal["on", "off"], mode: Mode, seen_cut: bool, meaning: Seen
) -> None:
    """A relay seen cut or armed means, for each mode, what DESIGN §2 rule 7 says."""
    subject = burner(cut_state, mode)
    seen = subject.cut_relay if seen_cut else subject.armed_relay

    assert subject.classify(seen) is meaning


def test_burner_exposes_its_wiring() -> None:
    """A burner's id, device and channel are those of its settings."""
    subject = burner("on")
    assert (subject.id, subject.device, subject.channel) == ("left", "sim", 2)
