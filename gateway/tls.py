"""One verifying TLS context per process for our httpx clients.

httpx builds a fresh `SSLContext` for every client, and loading the CA bundle into it costs
~50 ms of CPU: every gateway start (and every test) paid that for its media-fetch client. A
context is safe to share between clients; this one is built the way httpx builds its default
(`SSL_CERT_FILE` / `SSL_CERT_DIR` first, else certifi's bundle).
"""

from __future__ import annotations

import functools
import os
import ssl

import certifi


@functools.cache
def client_context() -> ssl.SSLContext:
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context(cafile=certifi.where())
