"""Signed webhooks (Standard Webhooks): endpoints, an outbox with leases, retries, a log."""
