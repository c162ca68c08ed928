"""Entry point of a neonize worker process: `python -m sessions.drivers.neonize.worker FD SETTINGS`.

Everything that can abort the interpreter (neonize's Go side, see docs/neonize.md) runs here, in
a process of its own, so an abort costs the daemon one worker's connections and nothing else.

Order matters in this file: logging is configured before neonize is imported, because importing
neonize calls `logging.basicConfig` and sends the `neonize.utils.log` level to Go (NOTSET would
forward every whatsmeow DEBUG line through ctypes).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys


def configure_logging(level: int) -> None:
    # One line per record, level first: the daemon parses "<LEVEL> <logger>: <message>" to re-log
    # the record under its own configuration (text or JSON).
    logging.basicConfig(level=level, stream=sys.stderr, force=True,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("neonize.utils.log").setLevel(logging.WARNING)
    logging.getLogger("whatsmeow").setLevel(max(level, logging.INFO))
    # Warns once that ffmpeg is missing; we only send text, so it is noise.
    logging.getLogger("neonize.utils.ffmpeg").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m sessions.drivers.neonize.worker FD SETTINGS_JSON", file=sys.stderr)
        raise SystemExit(2)
    fd = int(args[0])
    settings = json.loads(args[1])
    # The daemon owns this process's lifetime: Ctrl+C in a terminal is for the daemon, which
    # then asks us to stop. SIGTERM (e.g. from a service manager) stops us cleanly (host.py).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(int(settings.get("log_level", logging.INFO)))

    from sessions.drivers.neonize.host import run

    code = run(fd, settings)
    sys.stderr.flush()
    # Not a normal interpreter exit: that would join executor threads still blocked in Go calls
    # (a hanging dial holds one for ~60 s) and run neonize's finalizers.
    os._exit(code)


if __name__ == "__main__":
    main()
