"""Configuration: a TOML file, then environment variables, over documented defaults.

Every setting is a field of one of the section dataclasses below; its metadata carries the
documentation, the environment variable that overrides it and its validation, so the loader,
`config.example.toml` and the docs cannot drift apart (a test compares them).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

DRIVERS = ("neonize", "simulated")


def setting(
    default: Any,
    doc: str,
    *,
    env: str | None = None,
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Any:
    meta = {"doc": doc, "env": env, "choices": choices, "minimum": minimum, "maximum": maximum}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ServerConfig:
    host: str = setting("127.0.0.1", "Address to listen on; 0.0.0.0 for every interface.",
                        env="WAGATE_HOST")
    port: int = setting(8080, "TCP port to listen on.", env="WAGATE_PORT", minimum=1,
                        maximum=65535)
    public_url: str = setting(
        "", "Base of send_url and qr_url as clients reach the daemon, e.g. https://wa.example.com. "
        "Empty: derived from host and port.", env="WAGATE_PUBLIC_URL")
    max_body_bytes: int = setting(65536, "Largest request body accepted; larger gets 413.",
                                  minimum=1024)
    shutdown_timeout: float = setting(
        8.0, "Seconds SIGTERM waits for in-flight requests and sessions before exiting.",
        minimum=0.5, maximum=60)
    log_level: str = setting("info", "Log level.", env="WAGATE_LOG_LEVEL",
                             choices=("debug", "info", "warning", "error"))
    log_format: str = setting("text", "Log line format.", env="WAGATE_LOG_FORMAT",
                              choices=("text", "json"))
    access_log: bool = setting(True, "Log one line per request (tokens in paths are redacted).")
    max_header_count: int = setting(64, "Most request headers accepted; more gets 431.",
                                    minimum=8, maximum=1000)
    max_header_bytes: int = setting(16384, "Largest total size of the request headers in "
                                    "bytes; larger gets 431.", minimum=1024)
    request_timeout: float = setting(
        60.0, "Seconds a request may take (reading its body included) before it is answered "
        "503 request_timeout; 0 turns it off. Send URLs (bounded by delivery.send_wait) and "
        "event streams are exempt, so a committed send is never cut short.", minimum=0,
        maximum=3600)
    cors_origins: str = setting(
        "", "Comma-separated origins allowed to call the API from a browser (CORS), e.g. "
        "https://app.example.com. Empty: no CORS headers at all (browsers refuse cross-origin "
        "calls).")


@dataclass(frozen=True)
class StorageConfig:
    data_dir: str = setting("data", "Directory for the database, the server secret and the "
                            "drivers' WhatsApp stores.", env="WAGATE_DATA_DIR")
    database: str = setting("", "Database location. Empty: wagate.db in data_dir (embedded "
                            "SQLite).", env="WAGATE_DATABASE")
    messages_days: float = setting(
        90.0, "Days a message (with its status history) is kept after it was accepted; "
        "0 keeps them forever. Messages still queued or sending are never removed.", minimum=0)
    inbound_days: float = setting(
        90.0, "Days an inbound message is kept; 0 keeps them forever.", minimum=0)
    webhook_log_days: float = setting(
        30.0, "Days a settled webhook delivery and its attempt log are kept; 0 keeps them "
        "forever. Pending deliveries are never removed.", minimum=0)


@dataclass(frozen=True)
class SessionsConfig:
    driver: str = setting("neonize", "WhatsApp driver: neonize (real WhatsApp) or simulated "
                          "(an in-process stand-in for demos and load tests).",
                          env="WAGATE_DRIVER", choices=DRIVERS)
    backoff_initial: float = setting(1.0, "First retry delay in seconds after a failed connect.",
                                     minimum=0.01)
    backoff_max: float = setting(300.0, "Longest retry delay in seconds.", minimum=0.01)
    backoff_jitter: float = setting(0.2, "Random +/- fraction applied to each retry delay.",
                                    minimum=0, maximum=1)
    send_timeout: float = setting(30.0, "Seconds a send may take in the driver before it fails.",
                                  minimum=0.1)
    token_grace_seconds: int = setting(
        86400, "After rotate-token, seconds the previous send URL keeps working.", minimum=0)


@dataclass(frozen=True)
class DeliveryConfig:
    send_wait: float = setting(
        5.0, "Seconds a send request waits for WhatsApp to take the message before it answers "
        "202 queued instead of 200 sent.", minimum=0, maximum=60)
    queue_ttl: float = setting(86400.0, "Seconds a queued message waits for its device before it "
                               "expires.", minimum=1)
    max_attempts: int = setting(5, "Sends WhatsApp refused before a message is failed.",
                                minimum=1)
    retry_initial: float = setting(2.0, "First delay in seconds before resending a refused "
                                   "message; doubles per attempt.", minimum=0.01)
    retry_max: float = setting(300.0, "Longest delay between resends.", minimum=0.01)
    rate_per_minute: float = setting(
        20.0, "Messages per minute per device (anti-ban pacing); 0 turns pacing off.", minimum=0)
    burst: int = setting(5, "Messages a device may send back to back before pacing applies.",
                         minimum=1)
    jitter: float = setting(0.3, "Random +/- fraction applied to each paced delay.", minimum=0,
                            maximum=1)
    recipient_cooldown: float = setting(
        0.0, "Least seconds between two messages from one device to the same recipient.",
        minimum=0)
    idempotency_ttl: float = setting(86400.0, "Seconds an Idempotency-Key (or ref=) is "
                                     "remembered.", minimum=60)
    max_media_bytes: int = setting(
        16 * 1024 * 1024, "Largest media file a message may carry (upload or URL); WhatsApp's own "
        "limits apply as well: image 5 MB, video and audio 16 MB, document 100 MB.",
        minimum=1024, maximum=100 * 1024 * 1024)
    media_fetch_timeout: float = setting(
        30.0, "Seconds fetching a media_url may take, redirects included.", minimum=1,
        maximum=300)
    media_allow_private: bool = setting(
        False, "Allow media_url to point at loopback, private, link-local, CGNAT or "
        "cloud-metadata addresses (a file server on the operator's own LAN).")
    check_recipients: bool = setting(
        False, "Check that a recipient has WhatsApp before queueing (answers are cached); "
        "off: only requests that ask with check=1.")
    recipient_check_ttl: float = setting(
        86400.0, "Seconds an on-WhatsApp answer is cached per device.", minimum=0)
    typing_seconds: float = setting(
        0.0, "Seconds \"typing...\" is shown in the chat before each message; 0 turns it off. "
        "Applies when pacing is on (one message at a time).", minimum=0, maximum=30)


@dataclass(frozen=True)
class WebhooksConfig:
    retry_schedule: str = setting(
        "5,300,1800,7200,18000,36000,50400,72000,86400",
        "Seconds between a failed delivery and each retry (Standard Webhooks' schedule, about "
        "3 days in all); each delay gets +/-10% jitter.")
    timeout: float = setting(15.0, "Seconds one delivery attempt may take.", minimum=0.1,
                             maximum=120)
    disable_after: float = setting(
        432000.0, "Seconds of nothing but failures after which an endpoint is disabled (5 days).",
        minimum=1)
    allow_private_targets: bool = setting(
        False, "Allow webhook URLs that resolve to loopback, private, link-local, CGNAT or "
        "cloud-metadata addresses (for receivers on the operator's own LAN).")
    allow_http: bool = setting(False, "Allow plain http:// webhook URLs (https only otherwise).")
    concurrency: int = setting(64, "Deliveries in flight at once, over all endpoints.",
                               minimum=1, maximum=1000)
    per_endpoint: int = setting(
        16, "Deliveries in flight at once to one endpoint (its receiver's concurrent requests), "
        "so a slow endpoint cannot take every slot.", minimum=1, maximum=100)
    secret_overlap: float = setting(
        86400.0, "After a secret rotation, seconds deliveries are also signed with the old one.",
        minimum=0)

    def schedule(self) -> list[float]:
        return [float(x) for x in self.retry_schedule.split(",") if x.strip()]


REGISTRATION = ("open", "approval", "closed")


@dataclass(frozen=True)
class SecurityConfig:
    registration: str = setting(
        "open", "Who may register as a partner with POST /partner/register. open: anyone, the "
        "key works at once (a LAN or a trusted network). approval: anyone, but the key answers "
        "403 partner_pending until the operator approves (wagate partners approve). closed: "
        "nobody; the operator creates partners (wagate partners create). On a public VPS use "
        "approval or closed.", env="WAGATE_REGISTRATION", choices=REGISTRATION)
    api_rate_per_minute: int = setting(
        600, "Requests per minute per partner API key (a token bucket: bursts up to this many); "
        "0: unlimited. The operator can override it per partner.", minimum=0)
    send_rate_per_minute: int = setting(
        120, "Requests per minute per send URL (sends and status reads); 0: unlimited. The "
        "operator can override it per partner.", minimum=0)
    register_per_hour: int = setting(
        10, "Registrations per hour from one client IP address; 0: unlimited.", minimum=0)
    link_page_per_minute: int = setting(
        120, "Requests per minute from one client IP address to the device link pages "
        "(/link/...); 0: unlimited.", minimum=0)
    failed_auth_per_minute: int = setting(
        30, "Failed credential lookups (unknown API key, send URL, link or operator token) per "
        "minute from one client IP address before that address is blocked; 0: unlimited.",
        minimum=0)
    failed_auth_block_seconds: float = setting(
        300.0, "Seconds an address that exceeded failed_auth_per_minute gets 429 on every "
        "request that carries a credential.", minimum=0)


@dataclass(frozen=True)
class SimulatedConfig:
    qr_codes: int = setting(6, "QR codes in one pairing attempt (whatsmeow: 6).", minimum=1)
    qr_first_seconds: float = setting(60.0, "Lifetime of the first QR code (whatsmeow: 60).",
                                      minimum=0.05)
    qr_next_seconds: float = setting(20.0, "Lifetime of each later QR code (whatsmeow: 20).",
                                     minimum=0.05)
    connect_seconds: float = setting(0.2, "Time a connect takes.", minimum=0)
    reconnect_seconds: float = setting(2.0, "Delay before a dropped connection comes back.",
                                       minimum=0)
    send_seconds: float = setting(0.02, "Time WhatsApp takes to acknowledge a send.", minimum=0)
    delivered_seconds: float = setting(1.0, "Delay from sent to the delivered receipt.",
                                       minimum=0)
    read_seconds: float = setting(3.0, "Delay from delivered to the read receipt; negative: "
                                  "never read.")
    connect_failure_rate: float = setting(0.0, "Share of connects that fail (0..1).", minimum=0,
                                          maximum=1)
    send_failure_rate: float = setting(0.0, "Share of sends WhatsApp refuses (0..1).", minimum=0,
                                       maximum=1)
    not_on_whatsapp: str = setting(
        "", "Comma-separated numbers (E.164 digits) the simulated WhatsApp says have no account, "
        "for the on-WhatsApp check.")

    def absent_numbers(self) -> frozenset[str]:
        return frozenset(n.strip().lstrip("+") for n in self.not_on_whatsapp.split(",")
                         if n.strip())


@dataclass(frozen=True)
class NeonizeConfig:
    devices_per_worker: int = setting(
        25, "Devices per neonize worker process. A Go fault in neonize kills one worker, so this "
        "is the blast radius; each worker costs about 65 MB before its devices.", minimum=1,
        maximum=500)
    ffi_concurrency: int = setting(
        16, "Concurrent neonize calls (sends, pairing codes, logouts) per worker, on top of the "
        "one thread each connected device holds.", minimum=1, maximum=256)
    connect_timeout: float = setting(
        30.0, "Seconds a connect waits for a worker process to start and accept the device "
        "before the supervisor backs off.", minimum=1)
    start_hold_seconds: float = setting(
        1.0, "Longest time one device's start keeps the other devices of its worker from "
        "starting or stopping (neonize's Go maps are not safe for concurrent starts); a start "
        "that shows a QR code, connects or fails sooner releases them sooner.",
        minimum=0.1, maximum=120)
    worker_restart_limit: int = setting(
        5, "Worker crashes within a minute after which no new worker is started until the "
        "minute has passed (devices keep backing off meanwhile).", minimum=1)
    worker_recycle_connects: int = setting(
        200, "Connects after which a worker takes no new devices and exits once its devices "
        "have moved (neonize leaks a database handle on every connect).", minimum=1)
    worker_idle_seconds: float = setting(
        30.0, "Seconds a worker without devices stays up before it exits.", minimum=0)
    shutdown_timeout: float = setting(
        2.5, "Seconds shutdown waits for the workers to stop their clients before killing them.",
        minimum=0.1, maximum=30)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    simulated: SimulatedConfig = field(default_factory=SimulatedConfig)
    neonize: NeonizeConfig = field(default_factory=NeonizeConfig)

    @property
    def data_dir(self) -> Path:
        return Path(self.storage.data_dir)

    @property
    def database_path(self) -> Path:
        return Path(self.storage.database) if self.storage.database else self.data_dir / "wagate.db"

    @property
    def public_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        return self.local_url

    @property
    def local_url(self) -> str:
        """How a process on this machine (the CLI) reaches the daemon."""
        host = self.server.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is not a reachable host
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.server.port}"


SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "storage": StorageConfig,
    "sessions": SessionsConfig,
    "delivery": DeliveryConfig,
    "webhooks": WebhooksConfig,
    "security": SecurityConfig,
    "simulated": SimulatedConfig,
    "neonize": NeonizeConfig,
}


def env_name(section: str, f: dataclasses.Field[Any]) -> str:
    """The environment variable of a setting: its alias, else WAGATE_<SECTION>_<NAME>."""
    alias: str | None = f.metadata.get("env")
    return alias or f"WAGATE_{section}_{f.name}".upper()


def _coerce(name: str, f: dataclasses.Field[Any], raw: Any, from_env: bool) -> Any:
    kind = f.type if isinstance(f.type, type) else {"str": str, "int": int, "float": float,
                                                    "bool": bool}[str(f.type)]
    value: Any
    try:
        if kind is bool:
            if from_env:
                lowered = str(raw).strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                value = lowered in ("1", "true", "yes", "on")
            elif isinstance(raw, bool):
                value = raw
            else:
                raise ValueError
        elif kind is int:
            if isinstance(raw, bool) or (not from_env and not isinstance(raw, int)):
                raise ValueError
            value = int(raw)
        elif kind is float:
            if isinstance(raw, bool) or (not from_env and not isinstance(raw, int | float)):
                raise ValueError
            value = float(raw)
        else:
            if not from_env and not isinstance(raw, str):
                raise ValueError
            value = str(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected {kind.__name__}, got {raw!r}") from None
    meta = f.metadata
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{name}: must be one of {', '.join(meta['choices'])}, got {value!r}")
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise ConfigError(f"{name}: must be at least {meta['minimum']}, got {value!r}")
    if meta["maximum"] is not None and value > meta["maximum"]:
        raise ConfigError(f"{name}: must be at most {meta['maximum']}, got {value!r}")
    return value


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the file named by `path` or WAGATE_CONFIG (if any), then apply the environment."""
    env = os.environ if env is None else env
    path = path or env.get("WAGATE_CONFIG") or None
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
    for key in data:
        if key not in SECTIONS:
            raise ConfigError(f"config file {path}: unknown section [{key}]")
    sections: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: [{section}] must be a table")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in table:
            if key not in fields:
                raise ConfigError(f"{section}.{key}: unknown setting")
        values: dict[str, Any] = {}
        for name, f in fields.items():
            var = env_name(section, f)
            if var in env:
                values[name] = _coerce(var, f, env[var], from_env=True)
            elif name in table:
                values[name] = _coerce(f"{section}.{name}", f, table[name], from_env=False)
        sections[section] = cls(**values)
    config = Config(**sections)
    try:
        if not config.webhooks.schedule() or min(config.webhooks.schedule()) < 0:
            raise ValueError
    except ValueError:
        raise ConfigError("webhooks.retry_schedule: a comma-separated list of seconds, e.g. "
                          '"5,300,1800"') from None
    for origin in config.server.cors_origins.split(","):
        origin = origin.strip()
        if origin and origin != "*" and not origin.startswith(("http://", "https://")):
            raise ConfigError(f"server.cors_origins: {origin!r} is not an origin like "
                              "https://app.example.com")
    if config.sessions.backoff_max < config.sessions.backoff_initial:
        raise ConfigError("sessions.backoff_max: must be at least sessions.backoff_initial")
    return config


def render_example() -> str:
    """The text of config.example.toml: every setting at its default, documented."""
    lines = [
        "# wagate configuration. Every setting is shown at its default.",
        "# Pass the file with `wagate --config PATH` or WAGATE_CONFIG=PATH; each setting can also",
        "# be set by the environment variable named in its comment, which wins over the file.",
    ]
    for section, cls in SECTIONS.items():
        lines += ["", f"[{section}]"]
        for f in dataclasses.fields(cls):
            lines.append(f"# {f.metadata['doc']}")
            extra = []
            if f.metadata["choices"]:
                extra.append("one of: " + ", ".join(f.metadata["choices"]))
            extra.append("env: " + env_name(section, f))
            lines.append("# " + "; ".join(extra))
            lines.append(f"{f.name} = {_toml_value(f.default)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
