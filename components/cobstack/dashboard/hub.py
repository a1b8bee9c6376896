"""The fan-out hub: the latest rendered fragment of every panel, conflated per browser.

Feeds (one reader task per stream) render each update ONCE and `publish` it here, where it
is also encoded ONCE for the wire (`encode`, e.g. as an SSE event); every browser holds a
`Subscription` to the panels of the page it shows and writes the same bytes. A subscription keeps only
the NAMES of panels changed since it last sent (an ordered set), never a queue of fragments:
when a browser is slow, newer fragments overwrite older ones and it receives the latest state
of each panel at its own pace. Memory per browser is bounded by its page's panel count, and
publishing never waits for a browser.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class HubStats:
    published: int = 0  # fragments published by feeds
    delivered: int = 0  # fragments handed to browsers
    conflated: int = 0  # fragments a browser never saw because a newer one replaced them


class Subscription:
    """One browser's view: which of its panels changed since it last sent."""

    def __init__(self, hub: Hub, panels: frozenset[str]):
        self.hub = hub
        self.panels = panels
        self.dirty: dict[str, None] = {}  # insertion-ordered set of panel names
        self._wake = asyncio.Event()
        self.closed = False

    def mark(self, panel: str) -> None:
        if panel in self.dirty:
            self.hub.stats.conflated += 1
        else:
            self.dirty[panel] = None
        self._wake.set()

    async def next(self) -> list[str]:
        """Wait for changes; the names of the panels changed since the last call, in the
        order they first changed (their latest state is in the hub). [] once closed."""
        while not self.dirty and not self.closed:
            self._wake.clear()
            await self._wake.wait()
        if self.closed:
            return []
        names, self.dirty = list(self.dirty), {}
        self.hub.stats.delivered += len(names)
        return names

    def close(self) -> None:
        self.closed = True
        self._wake.set()
        self.hub.unsubscribe(self)


class Hub:
    def __init__(self, encode: Callable[[str, str], bytes] = lambda panel, html: html.encode()) -> None:
        self.encode = encode
        self.latest: dict[str, str] = {}  # panel -> newest fragment
        self.wire: dict[str, bytes] = {}  # panel -> newest fragment, encoded for the browsers
        self.placeholders: set[str] = set()  # panels showing an empty state, not data
        self.stats = HubStats()
        self._by_panel: dict[str, set[Subscription]] = {}
        self._subs: set[Subscription] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, panel: str, html: str, placeholder: bool = False) -> None:
        """The newest fragment of `panel`; `placeholder`: an empty state, to be replaced by data."""
        (self.placeholders.add if placeholder else self.placeholders.discard)(panel)
        self.latest[panel] = html
        self.wire[panel] = self.encode(panel, html)
        self.stats.published += 1
        for sub in self._by_panel.get(panel, ()):
            sub.mark(panel)

    def subscribe(self, panels: Iterable[str]) -> Subscription:
        """A new browser: it first receives the current fragment of every panel it names
        that has one (a reconnecting page is brought up to date at once)."""
        sub = Subscription(self, frozenset(panels))
        for panel in sub.panels:
            self._by_panel.setdefault(panel, set()).add(sub)
            if panel in self.latest:
                sub.dirty[panel] = None
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub not in self._subs:
            return
        self._subs.discard(sub)
        for panel in sub.panels:
            subs = self._by_panel.get(panel)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_panel[panel]

    def close(self) -> None:
        """Server shutdown: every subscription ends, so every SSE response finishes."""
        for sub in list(self._subs):
            sub.close()
