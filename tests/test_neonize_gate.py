"""The readers-writer gate that keeps neonize lifecycle calls away from every other FFI call."""

from __future__ import annotations

import asyncio

import pytest

from sessions.drivers.neonize.gate import RWGate


async def test_readers_share_and_writers_exclude() -> None:
    gate = RWGate()
    log: list[str] = []
    inside = 0
    peak = 0

    async def reader(name: str) -> None:
        nonlocal inside, peak
        async with gate.shared():
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.02)
            inside -= 1
            log.append(name)

    async def writer(name: str) -> None:
        async with gate.exclusive():
            assert inside == 0
            log.append(f"{name}+")
            await asyncio.sleep(0.02)
            log.append(f"{name}-")

    await asyncio.gather(reader("r1"), reader("r2"), writer("w"), reader("r3"))
    assert peak == 2  # r1 and r2 together; r3 queued behind the waiting writer
    assert log.index("w+") > max(log.index("r1"), log.index("r2"))
    assert log.index("w-") < log.index("r3")
    assert not gate.busy


async def test_a_waiting_writer_holds_back_later_readers() -> None:
    gate = RWGate()
    order: list[str] = []
    release = asyncio.Event()

    async def first_reader() -> None:
        async with gate.shared():
            await release.wait()
        order.append("r1")

    async def writer() -> None:
        async with gate.exclusive():
            order.append("w")

    async def late_reader() -> None:
        async with gate.shared():
            order.append("r2")

    tasks = [asyncio.create_task(first_reader())]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(writer()))
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(late_reader()))
    await asyncio.sleep(0.01)
    assert order == []  # the late reader waits behind the writer
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["r1", "w", "r2"]


async def test_cancelled_waiters_never_leave_the_gate_held() -> None:
    gate = RWGate()
    holder_done = asyncio.Event()

    async def holder() -> None:
        async with gate.exclusive():
            await holder_done.wait()

    async def waiter() -> None:
        async with gate.exclusive():
            pytest.fail("a cancelled waiter must not get the gate")

    h = asyncio.create_task(holder())
    await asyncio.sleep(0)
    w = asyncio.create_task(waiter())
    r = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    w.cancel()
    holder_done.set()
    await h
    with pytest.raises(asyncio.CancelledError):
        await w
    await r
    async with gate.exclusive():
        pass
    assert not gate.busy
