"""HMACAuthPlugin config: what is accepted, and errors that name the key."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

import pytest

from netaio_auth import DEFAULT_MAX_SKEW, DEFAULT_REPLAY_CACHE_SIZE, HMACAuthPlugin
from netaio_core import Body, Message


@pytest.mark.parametrize("config", [{}, {"secret": None}, {"hmac_field": "h"}])
def test_missing_secret(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match='"secret"'):
        HMACAuthPlugin(config)


@pytest.mark.parametrize("secret", ["", b""])
def test_empty_secret(secret: str | bytes) -> None:
    with pytest.raises(ValueError, match='"secret"'):
        HMACAuthPlugin({"secret": secret})


@pytest.mark.parametrize("secret", [1, 1.5, True, bytearray(b"k"), memoryview(b"k"), [b"k"]])
def test_wrongly_typed_secret(secret: Any) -> None:
    with pytest.raises(TypeError, match='"secret"'):
        HMACAuthPlugin({"secret": secret})


@pytest.mark.parametrize("config", [None, "secret", [("secret", b"k")]])
def test_config_must_be_a_mapping(config: Any) -> None:
    with pytest.raises(TypeError, match="dict"):
        HMACAuthPlugin(config)


def test_any_mapping_is_a_config() -> None:
    plugin = HMACAuthPlugin(MappingProxyType({"secret": b"k", "max_skew": 5}))
    assert plugin.max_skew == 5


def test_unknown_keys_are_refused() -> None:
    """A typo must not silently leave replay protection off."""
    with pytest.raises(ValueError, match="max_skwe"):
        HMACAuthPlugin({"secret": b"k", "max_skwe": 30})


def test_defaults() -> None:
    plugin = HMACAuthPlugin({"secret": b"k"})
    assert (plugin.hmac_field, plugin.nonce_field, plugin.ts_field) == ("hmac", "nonce", "ts")
    assert plugin.max_skew == DEFAULT_MAX_SKEW == 300
    assert plugin.replay_cache_size == DEFAULT_REPLAY_CACHE_SIZE


@pytest.mark.parametrize("key", ["hmac_field", "nonce_field", "ts_field"])
def test_field_names(key: str) -> None:
    plugin = HMACAuthPlugin({"secret": b"k", key: "custom"})
    message = Message.prepare(Body.prepare(b"x"))
    plugin.make(message.auth_data, message.body)
    assert "custom" in message.auth_data.fields
    assert key.removesuffix("_field") not in message.auth_data.fields
    assert plugin.check(message.auth_data, message.body)
    with pytest.raises(ValueError, match=key):
        HMACAuthPlugin({"secret": b"k", key: ""})
    with pytest.raises(TypeError, match=key):
        HMACAuthPlugin({"secret": b"k", key: b"custom"})


def test_field_names_must_differ() -> None:
    with pytest.raises(ValueError, match="must differ"):
        HMACAuthPlugin({"secret": b"k", "nonce_field": "hmac"})


@pytest.mark.parametrize("skew", [0, -1, 0.0, math.inf, math.nan])
def test_max_skew_must_be_positive_and_finite(skew: float) -> None:
    with pytest.raises(ValueError, match="max_skew"):
        HMACAuthPlugin({"secret": b"k", "max_skew": skew})


@pytest.mark.parametrize("skew", ["30", True, [30]])
def test_max_skew_must_be_a_number(skew: Any) -> None:
    with pytest.raises(TypeError, match="max_skew"):
        HMACAuthPlugin({"secret": b"k", "max_skew": skew})


def test_max_skew_none_is_off() -> None:
    assert HMACAuthPlugin({"secret": b"k", "max_skew": None}).max_skew is None


def test_replay_cache_size() -> None:
    plugin = HMACAuthPlugin({"secret": b"k", "max_skew": 5, "replay_cache_size": 7})
    assert plugin.replay_cache_size == 7
    with pytest.raises(ValueError, match="replay_cache_size"):
        HMACAuthPlugin({"secret": b"k", "max_skew": None, "replay_cache_size": 7})
    with pytest.raises(ValueError, match="replay_cache_size"):
        HMACAuthPlugin({"secret": b"k", "max_skew": 5, "replay_cache_size": 0})
    for wrong in ("7", 7.0, True):
        with pytest.raises(TypeError, match="replay_cache_size"):
            HMACAuthPlugin({"secret": b"k", "max_skew": 5, "replay_cache_size": wrong})


def test_config_is_read_once() -> None:
    """Changing the dict afterwards changes nothing."""
    config: dict[str, Any] = {"secret": b"k"}
    plugin = HMACAuthPlugin(config)
    message = Message.prepare(Body.prepare(b"x"))
    plugin.make(message.auth_data, message.body)
    config["secret"] = b"other"
    config["hmac_field"] = "other"
    assert plugin.check(message.auth_data, message.body)
