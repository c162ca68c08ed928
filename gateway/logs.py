"""Logging: human-readable or JSON lines, with every credential redacted before it is written."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time

from gateway.tokens import TOKEN_PREFIXES

_TOKEN = re.compile(
    r"\b(whsec)_[A-Za-z0-9+/=]{6,}|\b(" + "|".join(p for p in TOKEN_PREFIXES if p != "whsec")
    + r")_[A-Za-z0-9]{6,}")


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
device_id: contextvars.ContextVar[str] = contextvars.ContextVar("device_id", default="-")


class ContextFilter(logging.Filter):
    """Stamp every record with the request and device it belongs to (contextvars follow tasks)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.device_id = device_id.get()
        return True


# GET send URLs carry the recipient and the text in the query string: keep them out of logs.
_SEND_QUERY = re.compile(r"(/wa/[^\s?\"]*)\?[^\s\"]*")


_TOKEN_MARKS = tuple(f"{p}_" for p in TOKEN_PREFIXES)


def redact_text(text: str) -> str:
    # Substring checks first: most lines hold neither, and the regexes cost more than the rest
    # of formatting an access-log line.
    if "/wa/" in text and "?" in text:
        text = _SEND_QUERY.sub(r"\1?…", text)
    if any(mark in text for mark in _TOKEN_MARKS):
        text = _TOKEN.sub(lambda m: f"{m.group(1) or m.group(2)}_…{m.group(0)[-4:]}", text)
    return text


class RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self.converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class JSONFormatter(RedactingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%SZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "device_id": getattr(record, "device_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact_text(json.dumps(entry, ensure_ascii=False))


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Install one stderr handler on the root logger; uvicorn's loggers propagate to it."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(RedactingFormatter(
            "%(asctime)s %(levelname)-7s [%(request_id)s %(device_id)s] %(name)s: %(message)s",
            "%Y-%m-%dT%H:%M:%SZ"))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # No format here uses the caller's file/line, thread or process: skip collecting them on
    # every record (the logging docs' "Optimization" section; an access line costs ~40% less).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Keep third-party chatter (neonize/whatsmeow forward DEBUG through ctypes) at WARNING.
    for name in ("neonize", "whatsmeow", "aiosqlite", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
