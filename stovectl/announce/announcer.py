"""Saying events aloud without ever holding up the controller.

The event bus calls ``hear`` on the event loop, and it only puts a sentence in
a short queue; a sentence just like the one before it is said once. One named
task takes sentences out in order and hands them to the speaker, one at a
time. A speaker that does not answer costs that task its timeouts and nothing
else: the queue keeps only the newest sentences, sentences too old to be news
are dropped, and an outage is logged once when it begins and once when it
ends (STYLE 9).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from stovectl.announce.texts import announcement, subject_of
from stovectl.core.events import Event
from stovectl.errors import DeviceError, DeviceUnavailable
from stovectl.settings import SpeakerSettings

log = logging.getLogger(__name__)

QUEUE_LIMIT = 8
"""Sentences waiting at most; the oldest goes first when a speaker is away."""
STALE_AFTER_SECONDS = 60.0
"""A sentence not said by then is old news, and is dropped rather than said late."""
REPEAT_WINDOW_SECONDS = 10.0
"""A sentence just like the one before it, this soon after, is not said again."""


class Speaker(Protocol):
    """Something that says a sentence aloud; it raises DeviceError when it cannot."""

    @property
    def where(self) -> str:
        """Where it is, for the log: a host name or address."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def say(self, text: str) -> None: ...


@dataclass(frozen=True)
class _Sentence:
    text: str
    queued_at: float
    """Monotonic seconds."""


class Announcer:
    """Subscribes to the event bus and has the speaker say the events ``announce`` names."""

    def __init__(
        self, settings: SpeakerSettings, burner_names: Mapping[str, str], speaker: Speaker
    ) -> None:
        self._subjects = frozenset(settings.announce)
        self._language = settings.language
        self._burner_names = dict(burner_names)
        self._speaker = speaker
        self._queue: deque[_Sentence] = deque()
        self._wake = asyncio.Event()
        self._latest: _Sentence | None = None
        self._away = False
        self._task: asyncio.Task[None] | None = None

    def hear(self, event: Event) -> None:
        """The event bus's subscriber: queue what there is to say, and return at once."""
        subject = subject_of(event)
        if subject is None or subject not in self._subjects:
            return
        text = announcement(event, self._burner_names, self._language)
        if text is None:
            return
        now = time.monotonic()
        if self._is_repeat(text, now):
            return
        if len(self._queue) >= QUEUE_LIMIT:
            dropped = self._queue.popleft()
            log.warning("speaker %s is behind; not saying %r", self._speaker.where, dropped.text)
        self._latest = _Sentence(text, now)
        self._queue.append(self._latest)
        self._wake.set()

    def _is_repeat(self, text: str, now: float) -> bool:
        """True for a sentence already waiting, or just like the last one and soon after it.

        A hazard locks every burner, and an alarm comes with the failed command it is
        about: the same sentence is said once, not once per event.
        """
        if any(waiting.text == text for waiting in self._queue):
            return True
        latest = self._latest
        return (
            latest is not None and latest.text == text
            and now - latest.queued_at < REPEAT_WINDOW_SECONDS
        )

    async def start(self) -> None:
        await self._speaker.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="announcer")

    async def close(self) -> None:
        """Stop saying things; what is still queued is not said."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._speaker.close()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                sentence = self._queue.popleft()
                if time.monotonic() - sentence.queued_at > STALE_AFTER_SECONDS:
                    log.info("not saying %r: it is old news", sentence.text)
                    continue
                await self._say(sentence.text)

    async def _say(self, text: str) -> None:
        """Say one sentence; a speaker that answered before gets a second try."""
        attempts = 1 if self._away else 2
        for attempt in range(1, attempts + 1):
            try:
                await self._speaker.say(text)
            except DeviceUnavailable as error:
                if attempt < attempts:
                    continue
                self._went_away(error)
                return
            except DeviceError as error:
                self._went_away(error)
                return
            except Exception:
                # A bug, not an outage: record it with its traceback and keep going.
                log.exception("saying %r failed", text)
                return
            if self._away:
                self._away = False
                log.info("speaker %s answers again; announcements resume", self._speaker.where)
            return

    def _went_away(self, error: DeviceError) -> None:
        if self._away:
            log.debug("speaker %s still not answering: %s", self._speaker.where, error)
            return
        self._away = True
        log.warning(
            "speaker %s cannot announce (%s); announcements are dropped until it answers",
            self._speaker.where, error,
        )
