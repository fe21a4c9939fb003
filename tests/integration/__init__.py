"""Integration tests: the real gateway over loopback SMTP."""
