"""wagate: a self-hosted WhatsApp device gateway."""

__version__ = "0.1.0"
