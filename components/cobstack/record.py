"""`cobstack record`: write venue traffic in the capture format, through the real shell.

The recorder runs the same VenueConnection ingest uses, with a tap that writes every frame
sent and received and every REST body, so a capture replays exactly as the session ran.
"""

from __future__ import annotations

import asyncio
import time

from .capture import CaptureWriter
from .config import Settings
from .core.symbols import venue_instrument
from .stack import open_venues
from .venues.connect import VenueConnection
from .venues.registry import make_adapter


async def record(settings: Settings, out: str, duration: float) -> dict:
    """Record every configured venue for `duration` seconds into `out`; returns line counts."""
    counts: dict[str, int] = {}
    venues = await open_venues(settings)
    with CaptureWriter(out) as writer:
        def tap(kind: str, url: str, data: str) -> None:
            writer.write(time.time(), kind, url, data)
            counts[kind] = counts.get(kind, 0) + 1

        conns = []
        for venue in settings.venues:
            natives = [venue_instrument(venue, s).native for s in settings.symbols]
            ws_url, rest_url = venues.endpoints.get(venue, (None, None))
            adapter = make_adapter(venue, natives, ws_url=ws_url, rest_url=rest_url)
            conns.append(VenueConnection(adapter, lambda a, t: (a.dirty.clear(), a.trades.clear()), tap=tap))
        tasks = [asyncio.create_task(c.run()) for c in conns]
        await asyncio.sleep(duration)
        for c in conns:
            await c.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    await venues.close()
    return {"file": out, "lines": counts}
