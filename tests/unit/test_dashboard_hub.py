"""The fan-out hub: latest state per panel, conflated per subscriber, never blocking."""

import asyncio

from cobstack.dashboard.hub import Hub


async def test_new_subscriber_gets_current_state_of_its_panels_only():
    hub = Hub()
    hub.publish("ladder-BTC-USD", "<a>1</a>")
    hub.publish("ladder-ETH-USD", "<a>2</a>")
    sub = hub.subscribe(["ladder-BTC-USD", "health"])
    assert await sub.next() == ["ladder-BTC-USD"]
    assert hub.latest["ladder-BTC-USD"] == "<a>1</a>"


async def test_slow_subscriber_gets_latest_fragment_once_and_conflation_is_counted():
    hub = Hub()
    slow = hub.subscribe(["p", "q"])
    fast = hub.subscribe(["p"])
    for i in range(1000):
        hub.publish("p", f"v{i}")
        assert await fast.next() == ["p"]
    hub.publish("q", "q0")
    # 1000 updates of p while `slow` never read: one pending name per panel, the newest value in the hub
    assert slow.dirty == {"p": None, "q": None}
    assert await slow.next() == ["p", "q"]
    assert (hub.latest["p"], hub.wire["p"]) == ("v999", b"v999")
    assert hub.stats.conflated == 999
    assert hub.stats.delivered == 1000 + 2


async def test_next_waits_for_a_publish_and_close_ends_every_subscription():
    hub = Hub()
    sub = hub.subscribe(["p"])
    waiter = asyncio.create_task(sub.next())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    hub.publish("p", "x")
    assert await asyncio.wait_for(waiter, 1) == ["p"]
    waiter = asyncio.create_task(sub.next())
    await asyncio.sleep(0)
    hub.close()
    assert await asyncio.wait_for(waiter, 1) == []
    assert hub.subscribers == 0


def test_unsubscribed_browser_is_no_longer_marked():
    hub = Hub(encode=lambda panel, html: f"{panel}={html}".encode())
    sub = hub.subscribe(["p"])
    sub.close()
    hub.publish("p", "x")
    assert sub.dirty == {} and hub.wire["p"] == b"p=x"
    assert hub.subscribers == 0
    sub.close()  # idempotent
