"""The neonize driver as the daemon sees it: a thin proxy to worker processes.

neonize's Go side can abort the interpreter (concurrent map writes, nil pointers on some calls),
so no neonize code runs in the daemon. Devices run in worker processes (`worker.py`), each a
shard of up to `devices_per_worker` devices; this module assigns devices to workers, forwards
calls and events, and supervises the workers:

- A worker that dies (a Go abort exits with 134, or it is killed) fails every pending call and
  reports `ConnectFailed("driver worker exited (...)")` to each of its open sessions; their
  supervisors back off and reconnect, which lands them on a fresh worker. The HTTP API, the
  store and the outbox live in the daemon and never notice.
- Crashes are rate-limited (`worker_restart_limit` per minute): past it, connects fail with
  `DriverNotReady` until the minute has passed, and the supervisors' backoff spaces the retries.
- neonize leaks a database handle on every connect; a worker that has done
  `worker_recycle_connects` connects takes no new devices and exits once its devices have moved
  (a device moves whenever it reconnects). An idle worker exits after `worker_idle_seconds`, so
  deleting every device leaves no thread behind.
- A key's new session goes to the worker still stopping its previous one: the worker orders
  them, so one WhatsApp session never runs twice (that would be `StreamReplaced`).

Each device has its own SQLite store, `<data_dir>/neonize/<key>.db`; `forget` deletes it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Literal

from gateway.config import NeonizeConfig
from gateway.errors import DriverError, DriverNotReady, NotConnected, PairingError, SendFailed
from sessions.drivers.base import DeviceRef, OutgoingMessage
from sessions.drivers.neonize import protocol
from sessions.events import ConnectFailed, DriverEvent, EventSink

log = logging.getLogger("wagate.neonize")

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CLOSE_WAIT = 2.0  # how long close() waits for the worker before returning (it must not block)
CLOSE_LIMIT = 90.0  # a close answer later than this means the worker is wedged; release anyway
CALL_TIMEOUT = 30.0  # pairing-code and logout calls (sends are bounded by the supervisor)
FORGET_TIMEOUT = 10.0
CRASH_WINDOW = 60.0
OUTPUT_BURST = 60  # unparsed worker output lines logged per second; a Go panic prints thousands
MAX_LINE = 8192
LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
          "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}
QUIET_OUTPUT = ("Press Ctrl+C to exit",)  # printed by Go on every connect


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


class WorkerGone(DriverNotReady):
    """The worker process exited before answering."""


def store_name(key: str) -> str:
    """A file name for a device's store; keys that are not plain names are hashed."""
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,100}", key):
        return key
    return "k_" + hashlib.sha256(key.encode()).hexdigest()[:32]


CRASH_PREFIXES = ("fatal error:", "panic:", "SIGSEGV", "SIGABRT", "unexpected signal")


def exit_description(code: int | None, crash_line: str | None,
                     output: collections.deque[str]) -> str:
    if code is None:
        what = "no exit code"
    elif code < 0:
        try:
            what = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            what = f"killed by signal {-code}"
    else:
        what = f"exit code {code}"
    detail = crash_line
    if detail is None and code is not None and code > 0 and output:
        detail = output[-1]
    return f"{what}: {detail[:160]}" if detail else what


class Worker:
    """One worker process and the sessions assigned to it."""

    def __init__(self, driver: NeonizeDriver, wid: int) -> None:
        self.driver = driver
        self.wid = wid
        self.proc: asyncio.subprocess.Process | None = None
        self.pid: int | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ready.add_done_callback(_retrieve)  # a spare worker's failure has no awaiter
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sessions: dict[int, NeonizeSession] = {}
        self.connects = 0
        self.draining = False  # takes no new sessions; exits when empty
        self.retiring = False  # being shut down on purpose
        self.dead = False
        self.exit_reason = ""
        self.output: collections.deque[str] = collections.deque(maxlen=40)
        self.crash_line: str | None = None  # the first "fatal error:"/"panic:" line it printed
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._idle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._level = logging.WARNING  # of the last log record, for its continuation lines
        self._burst_start = 0.0
        self._burst = 0
        self._dropped = 0

    @property
    def accepting(self) -> bool:
        return not (self.dead or self.draining or self.retiring)

    @property
    def load(self) -> int:
        return len(self.sessions)

    def has_key(self, key: str) -> bool:
        return any(s.key == key for s in self.sessions.values())

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """Start the process and wait for its hello; failures land in `ready`."""
        cfg = self.driver.config
        parent_sock, child_sock = socket.socketpair()
        settings = {"devices_per_worker": cfg.devices_per_worker,
                    "ffi_concurrency": cfg.ffi_concurrency,
                    "start_hold_seconds": cfg.start_hold_seconds,
                    "log_level": logging.getLogger("wagate.neonize").getEffectiveLevel(),
                    "test_hooks": os.environ.get("WAGATE_NEONIZE_TEST_HOOKS") == "1"}
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-u", "-m", "sessions.drivers.neonize.worker",
                str(child_sock.fileno()), json.dumps(settings),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, pass_fds=(child_sock.fileno(),), env=env,
                start_new_session=True)  # Ctrl+C in a terminal goes to the daemon only
        except Exception as exc:
            parent_sock.close()
            child_sock.close()
            self.dead = True
            self.exit_reason = f"could not start: {exc}"
            self.ready.set_exception(DriverNotReady(f"driver worker {self.exit_reason}"))
            self.exited.set_result(None)
            self.driver._worker_exited(self, expected=False)
            return
        child_sock.close()
        self.pid = self.proc.pid
        if self.retiring:  # stopped while it was being spawned
            self.kill()
        relay = asyncio.ensure_future(self._relay_output())
        self._spawn_task(self._watch(relay))
        try:
            reader, self.writer = await asyncio.open_unix_connection(sock=parent_sock)
            self._spawn_task(self._read(reader))
            await asyncio.wait_for(asyncio.shield(self.ready), cfg.connect_timeout)
        except TimeoutError:
            log.error("neonize worker %d (pid %s) did not start within %.0fs; killing it",
                      self.wid, self.pid, cfg.connect_timeout)
            self.kill()
        except DriverError:
            pass  # it exited; _watch has reported why
        except Exception:
            log.exception("neonize worker %d: could not talk to it; killing it", self.wid)
            parent_sock.close()
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await protocol.read_frame(reader)
                if message is None:
                    return
                self._on_message(message)
        except (protocol.ProtocolError, ConnectionError, ValueError) as exc:
            log.error("neonize worker %d: bad frame (%s); killing it", self.wid, exc)
            self.kill()

    def _on_message(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "reply":
            fut = self._pending.pop(int(message.get("re", -1)), None)
            if fut is None or fut.done():
                return
            if message.get("ok"):
                fut.set_result(message.get("result"))
            else:
                fut.set_exception(protocol.error_from_wire(message.get("error")))
        elif op == "event":
            session = self.sessions.get(int(message.get("sid", -1)))
            if session is not None:
                try:
                    event = protocol.event_from_wire(message.get("event") or {})
                except (protocol.ProtocolError, TypeError) as exc:
                    log.warning("neonize worker %d: bad event: %s", self.wid, exc)
                    return
                session.deliver(event)
        elif op == "hello":
            log.info("neonize worker %d started (pid %s, neonize %s, %s executor threads)",
                     self.wid, message.get("pid"), message.get("neonize"),
                     message.get("executor"))
            if not self.ready.done():
                self.ready.set_result(None)
        elif op == "leak":
            log.warning("neonize worker %d leaked a client thread; recycling it", self.wid)
            self.draining = True
            self.driver._maybe_retire(self)

    async def _relay_output(self) -> None:
        """Re-log the worker's stderr/stdout (its log records, Go's prints, crash traces).

        Read in chunks, not `readline()`: a line over the stream limit would stop the relay,
        the pipe would fill, and the worker would block on its next write.
        """
        assert self.proc is not None
        assert self.proc.stdout is not None
        pending = b""
        while True:
            chunk = await self.proc.stdout.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if len(pending) > MAX_LINE:
                lines.append(pending)
                pending = b""
            for raw in lines:
                self._relay_line(raw[:MAX_LINE].decode(errors="replace").rstrip())
        if pending:
            self._relay_line(pending[:MAX_LINE].decode(errors="replace").rstrip())
        if self._dropped:
            log.warning("[worker %d] ... %d more output lines", self.wid, self._dropped)

    def _relay_line(self, line: str) -> None:
        if not line:
            return
        self.output.append(line)
        if self.crash_line is None and line.startswith(CRASH_PREFIXES):
            self.crash_line = line
        head, _, rest = line.partition(" ")
        if head in LEVELS and ": " in rest:
            name, _, text = rest.partition(": ")
            self._level = LEVELS[head]
            logging.getLogger(name).log(self._level, "[worker %d] %s", self.wid, text)
            return
        fallback = logging.getLogger("wagate.neonize.worker")
        if line in QUIET_OUTPUT or line.startswith("Login event:"):
            fallback.debug("[worker %d] %s", self.wid, line)
            return
        # Anything else is Go printing, a traceback or a crash dump: keep a burst, count the rest.
        now = time.monotonic()
        if now - self._burst_start > 1.0:
            if self._dropped:
                fallback.warning("[worker %d] ... %d more output lines", self.wid, self._dropped)
            self._burst_start, self._burst, self._dropped = now, 0, 0
        self._burst += 1
        if self._burst > OUTPUT_BURST:
            self._dropped += 1
            return
        fallback.log(max(self._level, logging.WARNING), "[worker %d] %s", self.wid, line)

    async def _watch(self, relay: asyncio.Future[None]) -> None:
        assert self.proc is not None
        code = await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(relay, 2.0)
        self.dead = True
        self.exit_reason = exit_description(code, self.crash_line, self.output)
        expected = self.retiring or self.driver.stopping
        if expected:
            log.info("neonize worker %d exited (%s)", self.wid, self.exit_reason)
        else:
            log.error("neonize worker %d (pid %s) died: %s", self.wid, self.pid,
                      self.exit_reason)
        if self.writer is not None:
            self.writer.close()
        gone = WorkerGone(f"driver worker exited ({self.exit_reason})")
        if not self.ready.done():
            self.ready.set_exception(
                DriverNotReady(f"driver worker failed to start ({self.exit_reason})"))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(gone)
        self._pending.clear()
        self.cancel_idle()
        self.driver._worker_exited(self, expected=expected)
        self.exited.set_result(None)

    def request(self, op: str, **fields: Any) -> asyncio.Future[Any]:
        """Send a request; the future holds the reply (or the error, or `WorkerGone`)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.dead or self.writer is None or self.writer.is_closing():
            fut.set_exception(WorkerGone(f"driver worker exited ({self.exit_reason or 'gone'})"))
            return fut
        self._next_id += 1
        rid = self._next_id
        self._pending[rid] = fut
        fut.add_done_callback(lambda _: self._pending.pop(rid, None))
        self.writer.write(protocol.encode({"op": op, "id": rid, **fields}))
        return fut

    async def call(self, op: str, limit: float | None = None, **fields: Any) -> Any:
        fut = self.request(op, **fields)
        try:
            return await asyncio.wait_for(fut, limit)
        except TimeoutError:
            raise DriverNotReady(f"driver worker did not answer {op} in time") from None

    def idle_later(self, delay: float) -> None:
        self.cancel_idle()
        self._idle = asyncio.get_running_loop().call_later(
            delay, lambda: self.driver._maybe_retire(self, idle=True))

    def cancel_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    async def retire(self, budget: float) -> None:
        """Ask the worker to stop its clients and exit; kill it if it takes longer than budget."""
        self.retiring = True
        self.cancel_idle()
        if self.ready.done() and not self.dead:
            with contextlib.suppress(DriverError):
                await self.call("shutdown", limit=budget, budget=max(0.1, budget - 0.3))
        else:
            self.kill()  # still starting: nothing to stop yet (start() kills it once spawned)
        try:
            await asyncio.wait_for(asyncio.shield(self.exited),
                                   0.5 if self.proc is not None else budget)
        except TimeoutError:
            log.warning("neonize worker %d did not exit in time; killing it", self.wid)
            self.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.exited), 5.0)


SessionState = Literal["new", "connecting", "open", "closed", "dead"]


class NeonizeSession:
    """One device's session as the supervisor sees it; the client lives in a worker."""

    def __init__(self, driver: NeonizeDriver, device: DeviceRef, sink: EventSink) -> None:
        self.driver = driver
        self.sid = driver._new_sid()
        self.key = device.key
        self.jid = device.jid
        self.sink = sink
        self.state: SessionState = "new"
        self.worker: Worker | None = None
        self._closed: asyncio.Future[Any] | None = None

    def deliver(self, event: DriverEvent) -> None:
        try:
            self.sink(event)
        except Exception:
            log.exception("device %s: event sink failed", self.key)

    async def connect(self) -> None:
        if self.state != "new":
            raise DriverNotReady(f"session is {self.state}; open a new one")
        self.state = "connecting"
        try:
            worker = await self.driver._assign(self)
            await worker.call("open", limit=self.driver.config.connect_timeout, sid=self.sid,
                              key=self.key, store=str(self.driver.store_path(self.key)),
                              jid=self.jid)
        except DriverError:
            if self.state == "connecting":
                self.state = "dead"
            raise
        if self.state == "connecting":
            self.state = "open"

    def worker_died(self, reason: str) -> None:
        was = self.state
        if was in ("connecting", "open"):
            self.state = "dead"
        if was == "open" and not self.driver.stopping:
            self.deliver(ConnectFailed(reason))

    def _live(self) -> Worker:
        worker = self.worker
        if self.state != "open" or worker is None or worker.dead:
            raise NotConnected("not connected to WhatsApp")
        return worker

    async def pair_phone(self, phone: str) -> str:
        try:
            worker = self._live()
        except NotConnected:
            raise PairingError("pairing is not running") from None
        try:
            return str(await worker.call("pair_phone", limit=CALL_TIMEOUT, sid=self.sid,
                                          phone=phone))
        except WorkerGone as exc:
            raise PairingError(exc.reason) from None
        except DriverError as exc:
            if isinstance(exc, PairingError):
                raise
            raise PairingError(exc.reason) from None

    async def send(self, message: OutgoingMessage, message_id: str | None) -> str:
        worker = self._live()
        fields: dict[str, Any] = {"sid": self.sid, "to": message.to, "kind": message.kind,
                                  "text": message.text, "link_preview": message.link_preview}
        if message.media is not None:  # the worker reads the blob itself: no bytes on the wire
            fields["media"] = dataclasses.asdict(message.media)
        if message.location is not None:
            fields["location"] = dataclasses.asdict(message.location)
        try:
            return str(await worker.request("send", **fields))
        except WorkerGone as exc:
            # The worker may or may not have handed it to WhatsApp before it died.
            raise SendFailed(f"{exc.reason} while sending; the message may have been sent"
                             ) from None

    async def on_whatsapp(self, phones: list[str]) -> dict[str, bool]:
        worker = self._live()
        try:
            answer = await worker.call("on_whatsapp", limit=CALL_TIMEOUT, sid=self.sid,
                                       phones=phones)
        except WorkerGone as exc:
            raise NotConnected(exc.reason) from None
        return {str(k): bool(v) for k, v in dict(answer).items()}

    async def typing(self, to: str, active: bool) -> None:
        worker = self._live()
        try:
            await worker.call("typing", limit=CALL_TIMEOUT, sid=self.sid, to=to, active=active)
        except WorkerGone as exc:
            raise NotConnected(exc.reason) from None

    async def logout(self) -> None:
        worker = self._live()
        try:
            await worker.call("logout", limit=CALL_TIMEOUT, sid=self.sid)
        except WorkerGone as exc:
            raise NotConnected(exc.reason) from None

    async def close(self) -> None:
        if self._closed is None:
            self.state = "closed" if self.state != "dead" else "dead"
            self._closed = self.driver._close(self)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._closed), CLOSE_WAIT)


class NeonizeDriver:
    name = "neonize"
    qr_window = 160.0  # whatsmeow: 6 codes, the first 60 s, then 20 s each
    honours_message_ids = False  # neonize's send_message picks its own id (SendResponse.ID)
    ordered_pipelining = False  # no ordering promise across concurrent FFI calls

    def __init__(self, config: NeonizeConfig, data_dir: Path) -> None:
        self.config = config
        self.store_dir = data_dir / "neonize"
        self.stopping = False
        self.workers: list[Worker] = []
        self._next_sid = 0
        self._next_wid = 0
        self._crashes: collections.deque[float] = collections.deque()
        self._closing: dict[str, Worker] = {}  # key -> worker still stopping its last session
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- the Driver protocol -------------------------------------------------------------------

    async def start(self) -> None:
        self.stopping = False
        self.store_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self.store_dir.chmod(0o700)  # WhatsApp credentials

    async def stop(self) -> None:
        """Stop every client and worker within `shutdown_timeout` (then kill what is left)."""
        self.stopping = True
        workers = list(self.workers)
        if workers:
            await asyncio.gather(*(w.retire(self.config.shutdown_timeout) for w in workers),
                                 return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()

    def open_session(self, device: DeviceRef, sink: EventSink) -> NeonizeSession:
        return NeonizeSession(self, device, sink)

    async def forget(self, key: str) -> None:
        store = self.store_path(key)
        paths = [str(store)] + [f"{store}{suffix}" for suffix in ("-journal", "-wal", "-shm")]
        involved = [w for w in self.workers
                    if not w.dead and (w.has_key(key) or self._closing.get(key) is w)]
        for worker in involved:
            # The worker deletes the files after its clients of this key have stopped.
            with contextlib.suppress(DriverError):
                await worker.call("forget", limit=FORGET_TIMEOUT, key=key, paths=paths,
                                  store=str(store))
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    # -- introspection (status pages, tests, bench) ---------------------------------------------

    def store_path(self, key: str) -> Path:
        return self.store_dir / f"{store_name(key)}.db"

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid is not None and not w.dead]

    # -- internals -----------------------------------------------------------------------------

    def _new_sid(self) -> int:
        self._next_sid += 1
        return self._next_sid

    def _spawn_task(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _recent_crashes(self) -> int:
        now = time.monotonic()
        while self._crashes and now - self._crashes[0] > CRASH_WINDOW:
            self._crashes.popleft()
        return len(self._crashes)

    def _new_worker(self) -> Worker:
        if self._recent_crashes() >= self.config.worker_restart_limit:
            wait = CRASH_WINDOW - (time.monotonic() - self._crashes[0])
            raise DriverNotReady(f"neonize workers crashed {len(self._crashes)} times in the last "
                                 f"minute; not starting another for {wait:.0f}s")
        self._next_wid += 1
        worker = Worker(self, self._next_wid)
        self.workers.append(worker)
        self._spawn_task(worker.start())
        return worker

    def _pick(self, key: str) -> Worker:
        sticky = self._closing.get(key)
        if sticky is not None and not (sticky.dead or sticky.retiring):
            return sticky
        room = [w for w in self.workers
                if w.accepting and w.load < self.config.devices_per_worker]
        if room:
            # Fill the fullest worker first: fewer processes (each ~65 MB before its devices).
            return max(room, key=lambda w: (w.load, -w.wid))
        return self._new_worker()

    async def _assign(self, session: NeonizeSession) -> Worker:
        if self.stopping:
            raise DriverNotReady("the neonize driver is stopping")
        worker = self._pick(session.key)
        worker.cancel_idle()
        worker.sessions[session.sid] = session
        session.worker = worker
        worker.connects += 1
        if worker.connects >= self.config.worker_recycle_connects and not worker.draining:
            log.info("neonize worker %d has done %d connects; recycling it", worker.wid,
                     worker.connects)
            worker.draining = True
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), self.config.connect_timeout)
        except TimeoutError:
            self._release(session)
            raise DriverNotReady("driver worker did not start in time") from None
        except DriverError:
            self._release(session)
            raise
        return worker

    def _close(self, session: NeonizeSession) -> asyncio.Future[Any]:
        """Stop the session's client in its worker; the future ends when it has stopped."""
        worker = session.worker
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if worker is None or worker.dead or session.sid not in worker.sessions:
            self._release(session)
            done.set_result(None)
            return done
        self._closing[session.key] = worker
        fut = worker.request("close", sid=session.sid)

        async def finish() -> None:
            try:
                await asyncio.wait_for(fut, CLOSE_LIMIT)
            except TimeoutError:
                log.warning("device %s: worker %d did not stop it in %.0fs; recycling the worker",
                            session.key, worker.wid, CLOSE_LIMIT)
                worker.draining = True
            except Exception as exc:
                log.debug("device %s: close: %s", session.key, exc)
            finally:
                if self._closing.get(session.key) is worker:
                    del self._closing[session.key]
                self._release(session)
                if not done.done():
                    done.set_result(None)

        self._spawn_task(finish())
        return done

    def _release(self, session: NeonizeSession) -> None:
        worker = session.worker
        if worker is None:
            return
        worker.sessions.pop(session.sid, None)
        self._maybe_retire(worker)

    def _maybe_retire(self, worker: Worker, idle: bool = False) -> None:
        if worker.dead or worker.retiring or worker.load > 0 or self.stopping:
            return
        if worker.draining or idle:
            log.info("neonize worker %d is %s; stopping it", worker.wid,
                     "recycled" if worker.draining else "idle")
            worker.retiring = True
            self._spawn_task(worker.retire(self.config.shutdown_timeout))
        else:
            worker.idle_later(self.config.worker_idle_seconds)

    def _worker_exited(self, worker: Worker, expected: bool) -> None:
        if worker in self.workers:
            self.workers.remove(worker)
        reason = f"driver worker exited ({worker.exit_reason})"
        had_sessions = False
        for session in list(worker.sessions.values()):
            had_sessions = had_sessions or session.state == "open"
            session.worker_died(reason)
        worker.sessions.clear()
        for key in [k for k, w in self._closing.items() if w is worker]:
            del self._closing[key]
        if expected or self.stopping:
            return
        self._crashes.append(time.monotonic())
        if had_sessions and not any(w.accepting for w in self.workers):
            # Warm a replacement while the sessions back off, so their retries find it ready.
            try:
                spare = self._new_worker()
            except DriverNotReady as exc:
                log.error("not restarting the neonize worker: %s", exc.reason)
                return
            spare.idle_later(max(self.config.worker_idle_seconds, 5.0))

