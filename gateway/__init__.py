"""E-mail policy gateway: an SMTP proxy that enforces government mail policy from YAML rules."""

__version__ = "0.1.0"
