"""Platform security: API key scopes, rate limits, brute-force guard, audit log, HTTP hardening.

See docs/security.md for the threat model and what each control does.
"""
