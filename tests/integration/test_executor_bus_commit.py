"""Bus.commit / load_state / done: the executor's exactly-once step, on both buses."""

from __future__ import annotations

import asyncio

import pytest

from cobstack.bus import Bus, StateConflict

GROUP = "g"


async def _delivered(bus: Bus, n: int) -> list[str]:
    await bus.ensure_group("in", GROUP)
    for i in range(n):
        await bus.publish("in", b"s%d" % i)
    return [e.id for e in await bus.read_group(GROUP, "c", ["in"], block_ms=None)]


async def test_commit_writes_outputs_state_and_acks_together(bus: Bus):
    assert await bus.load_state("st") == (0, None)
    ids = await _delivered(bus, 3)
    out = await bus.commit("st", 0, b"state-1", group=GROUP, acks={"in": ids[:2]},
                           items=[("out:a", b"x"), ("out:b", b"y"), ("out:a", b"z")])
    assert len(out) == 3
    assert [e.data for e in await bus.range("out:a")] == [b"x", b"z"]
    assert [e.data for e in await bus.range("out:b")] == [b"y"]
    assert await bus.load_state("st") == (1, b"state-1")
    assert [e.id for e in await bus.pending_for("in", GROUP, "c")] == ids[2:]
    assert await bus.done("st", "in", ids) == set(ids[:2])
    assert await bus.done("other-state", "in", ids) == set()

    await bus.commit("st", 1, b"state-2", group=GROUP, acks={"in": ids[2:]})  # no outputs: still a step
    assert await bus.load_state("st") == (2, b"state-2")
    assert await bus.pending_for("in", GROUP, "c") == []


async def test_commit_at_a_stale_version_changes_nothing(bus: Bus):
    ids = await _delivered(bus, 2)
    await bus.commit("st", 0, b"mine", group=GROUP, acks={"in": ids[:1]})
    with pytest.raises(StateConflict, match="version 1"):
        await bus.commit("st", 0, b"theirs", group=GROUP, acks={"in": ids[1:]}, items=[("out", b"x")])
    assert await bus.load_state("st") == (1, b"mine")
    assert await bus.range("out") == []
    assert [e.id for e in await bus.pending_for("in", GROUP, "c")] == ids[1:]
    assert await bus.done("st", "in", ids) == {ids[0]}


async def test_bad_payload_writes_nothing(bus: Bus):
    ids = await _delivered(bus, 1)
    with pytest.raises(TypeError):
        await bus.commit("st", 0, b"s", group=GROUP, acks={"in": ids}, items=[("out", "text")])  # type: ignore[list-item]
    assert await bus.load_state("st") == (0, None)
    assert await bus.range("out") == [] and len(await bus.pending_for("in", GROUP, "c")) == 1


async def test_done_records_follow_the_input_streams_retention(bus: Bus):
    await bus.ensure_group("in", GROUP)
    first = await bus.publish("in", b"old")
    (entry,) = await bus.read_group(GROUP, "c", ["in"], block_ms=None)
    await bus.commit("st", 0, b"s", group=GROUP, acks={"in": [entry.id]})
    assert await bus.done("st", "in", [first]) == {first}
    await asyncio.sleep(0.005)  # done records are dropped by the millisecond of the oldest entry
    # enough entries that even Redis's approximate MAXLEN (whole 100-entry nodes) drops "old"
    later = await bus.publish_many([("in", b"new")] * 300, maxlen=2)
    assert (await bus.range("in", count=1))[0].id != first
    got = await bus.read_group(GROUP, "c", ["in"], block_ms=None, count=1000)
    await bus.commit("st", 1, b"s", group=GROUP, acks={"in": [e.id for e in got]})
    assert await bus.done("st", "in", [first, later[-1]]) == {later[-1]}
