"""Upstream adapters (wallet, payment, eSIM, OTP), found through the `wagate.plugins` entry points.

The interface is declared in `plugins.hookspecs`; the adapters arrive with the next wave.
"""
