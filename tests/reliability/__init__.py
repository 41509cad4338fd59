"""Reliability and security tests: hostile peers, limits, slow consumers, shutdown, TLS."""
