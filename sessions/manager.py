"""The session manager: one supervised task per device, owned by one task group.

`running()` restores every device from the store (linked devices reconnect without a scan), and
on exit stops every supervisor within the shutdown deadline, then cancels what is left. A
supervisor that crashes is restarted after a pause; it never takes another device or the API
with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup

from gateway.config import DeliveryConfig, SessionsConfig
from gateway.errors import NotConnected
from gateway.media import MediaStore
from gateway.store import Device, Store
from sessions.backoff import Backoff
from sessions.drivers.base import Driver
from sessions.outcomes import Outcomes
from sessions.supervisor import DeviceSupervisor

log = logging.getLogger("wagate.sessions")

MEDIA_COLLECT_INTERVAL = 600.0  # seconds between media clean-ups
MEDIA_GRACE = 3600.0  # a blob untouched this long and needed by no queued message goes

Listener = Callable[[DeviceSupervisor, str, dict[str, Any]], Awaitable[None]]


class SessionManager:
    def __init__(self, store: Store, driver: Driver, settings: SessionsConfig,
                 delivery: DeliveryConfig, media: MediaStore) -> None:
        self.store = store
        self.driver = driver
        self.settings = settings
        self.delivery = delivery
        self.media = media
        self.outcomes = Outcomes()
        self.listeners: list[Listener] = []
        self._supervisors: dict[int, DeviceSupervisor] = {}
        self._scopes: dict[int, anyio.CancelScope] = {}
        self._tg: TaskGroup | None = None
        self.ready = False
        self.held: set[int] = set()  # suspended partners: their devices send nothing

    @asynccontextmanager
    async def running(self, shutdown_timeout: float = 8.0) -> AsyncIterator[SessionManager]:
        await self.driver.start()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                in_doubt = await self.store.requeue_in_doubt()
                if in_doubt:
                    log.warning("%d message(s) were being handed to WhatsApp when the daemon "
                                "stopped; they are queued again", in_doubt)
                tg.start_soon(self._expire_forever, name="queue expiry")
                for device in await self.store.all_devices():
                    self.add(device)
                self.ready = True
                try:
                    yield self
                finally:
                    self.ready = False
                    with anyio.move_on_after(shutdown_timeout, shield=True):
                        await self.stop_all()
                    tg.cancel_scope.cancel()
                    self._tg = None
        finally:
            with anyio.CancelScope(shield=True):
                await self.driver.stop()

    def add(self, device: Device) -> DeviceSupervisor:
        if self._tg is None:
            raise NotConnected("session manager is not running")
        sup = self._supervisor(device)
        self._supervisors[device.id] = sup
        self._tg.start_soon(self._guard, sup, name=f"device {device.session_id}")
        return sup

    def _supervisor(self, device: Device) -> DeviceSupervisor:
        sup = DeviceSupervisor(device, self.driver, self.store, self.settings, self.delivery,
                               self.outcomes, self.media, self._notify)
        sup.dispatcher.held = device.partner_id in self.held
        return sup

    def hold(self, partner_id: int, held: bool) -> None:
        """Stop (or resume) dispatching the queued messages of a partner's devices; their
        sessions stay connected and keep receiving."""
        if held:
            self.held.add(partner_id)
        else:
            self.held.discard(partner_id)
        for sup in self._supervisors.values():
            if sup.partner_id == partner_id:
                sup.dispatcher.held = held
                sup.dispatcher.wake()

    def wake(self, device_id: int) -> None:
        """A message was queued for this device."""
        sup = self._supervisors.get(device_id)
        if sup is not None:
            sup.dispatcher.wake()

    async def _expire_forever(self) -> None:
        interval = min(30.0, max(0.5, self.delivery.queue_ttl / 10))
        next_collect = time.monotonic() + MEDIA_COLLECT_INTERVAL
        while True:
            await anyio.sleep(interval)
            try:
                for message in await self.store.expire_due(time.time()):
                    self.outcomes.resolve(message.id, "expired")
            except Exception:
                log.exception("queue expiry failed; trying again")
            if time.monotonic() >= next_collect:
                next_collect = time.monotonic() + MEDIA_COLLECT_INTERVAL
                try:
                    await self.collect_media()
                except Exception:
                    log.exception("media clean-up failed; trying again later")

    async def collect_media(self, grace: float = MEDIA_GRACE) -> int:
        """Remove media blobs no queued or sending message needs (untouched for `grace` s,
        so a blob written for a message not yet committed is never taken)."""
        stale = await anyio.to_thread.run_sync(self.media.stale, grace)
        if not stale:
            return 0
        needed = await self.store.media_in_use([p.name for p in stale])
        doomed = [p for p in stale if p.name not in needed]
        removed = await anyio.to_thread.run_sync(self.media.remove, doomed)
        if removed:
            log.info("removed %d media file(s) no queued message needs", removed)
        return removed

    def get(self, device_id: int) -> DeviceSupervisor | None:
        return self._supervisors.get(device_id)

    def __iter__(self) -> Any:
        return iter(list(self._supervisors.values()))

    async def remove(self, device_id: int, *, logout: bool) -> None:
        """Stop a device's supervisor (logging out first if asked) and forget its session."""
        sup = self._supervisors.get(device_id)
        if sup is None:
            return
        with anyio.move_on_after(self.settings.send_timeout):
            if logout:
                await sup.logout()
            await sup.stop()
        scope = self._scopes.get(device_id)
        if scope is not None and not sup.stopped.is_set():
            scope.cancel()
        self._supervisors.pop(device_id, None)

    async def stop_all(self) -> None:
        async with anyio.create_task_group() as tg:
            for sup in list(self._supervisors.values()):
                tg.start_soon(sup.stop)

    async def _guard(self, sup: DeviceSupervisor) -> None:
        pause = Backoff(self.settings.backoff_initial, self.settings.backoff_max,
                        self.settings.backoff_jitter)
        with anyio.CancelScope() as scope:
            self._scopes[sup.device_id] = scope
            try:
                while True:
                    try:
                        await sup.run()
                        return
                    except Exception:
                        log.exception("device %s: supervisor crashed; restarting", sup.key)
                    await anyio.sleep(pause.next_delay())
                    device = await self.store.device_by_id(sup.device_id)
                    if device is None or self._supervisors.get(sup.device_id) is not sup:
                        return
                    sup = self._supervisor(device)
                    self._supervisors[device.id] = sup
            finally:
                self._scopes.pop(sup.device_id, None)

    async def _notify(self, sup: DeviceSupervisor, name: str, data: dict[str, Any]) -> None:
        for listener in self.listeners:
            await listener(sup, name, data)
