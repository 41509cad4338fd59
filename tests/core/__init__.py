"""Tests of netaio-core alone: codec, auth section, framing, Protocols, limits."""
