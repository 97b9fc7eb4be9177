"""A Xiaoai speaker on the LAN, saying a text through its MiOT text-to-speech action.

It speaks miIO like the relays and gets a serial lane of its own (``MiioLane``),
so a speaker that is away delays only announcements, never a burner. The
action's reply carries a MiOT code, which python-miio does not check: a code
other than ok is a refusal.
"""

from __future__ import annotations

from typing import Any

from stovectl.devices.miio import CODES, MiioLane, RequestIds
from stovectl.errors import DeviceRefused
from stovectl.settings import SpeakerSettings

LANE_NAME = "speaker"
IDS_KEY = "[speaker]"
"""Where its request ids are kept: not an id a device could have."""
OK_CODES = (0, 1)


class XiaoaiSpeaker:
    """A ``xiaomi.wifispeaker.*`` that says what it is given."""

    def __init__(self, settings: SpeakerSettings, ids: RequestIds | None = None) -> None:
        self._host = settings.host
        self._siid, self._aiid = settings.action
        token = settings.token
        assert token is not None  # resolved at load
        timeout = settings.timeout.total_seconds()
        self._lane = MiioLane(LANE_NAME, settings.host, token, timeout, timeout, ids, IDS_KEY)

    @property
    def where(self) -> str:
        return self._host

    async def start(self) -> None:
        await self._lane.start()

    async def close(self) -> None:
        await self._lane.close()

    async def say(self, text: str) -> None:
        """Say ``text``; DeviceUnavailable if no answer, DeviceRefused if the speaker said no."""
        reply = await self._lane.send("action", {
            "did": f"call-{self._siid}-{self._aiid}",
            "siid": self._siid,
            "aiid": self._aiid,
            "in": [text],
        })
        self._check(reply)

    def _check(self, reply: Any) -> None:
        code = reply.get("code") if isinstance(reply, dict) else None
        if code in OK_CODES:
            return
        if isinstance(code, int):
            meaning = CODES.get(code, "unknown code")
            raise DeviceRefused(
                LANE_NAME,
                f"refused action siid {self._siid} aiid {self._aiid}: code {code} ({meaning})",
            )
        raise DeviceRefused(LANE_NAME, f"action answered {reply!r}")
