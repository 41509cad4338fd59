"""HMACAuthPlugin replay protection (config "max_skew"), with a hand-moved clock."""

from __future__ import annotations

import math

from netaio_auth import HMACAuthPlugin
from netaio_core import AuthFields, Body, Message

SECRET = b"replay test secret"
START = 1_700_000_000.0


class FakeClock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pair(
    clock: FakeClock, max_skew: float = 30, **config: object
) -> tuple[HMACAuthPlugin, HMACAuthPlugin]:
    """A sender and a receiver sharing the secret and the clock."""
    settings = {"secret": SECRET, "max_skew": max_skew, **config}
    return HMACAuthPlugin(settings, clock=clock), HMACAuthPlugin(settings, clock=clock)


def signed(sender: HMACAuthPlugin, content: bytes = b"transfer 10") -> Message:
    message = Message.prepare(Body.prepare(content, b"bank"))
    sender.make(message.auth_data, message.body)
    return message


def test_a_replayed_message_is_rejected() -> None:
    clock = FakeClock()
    sender, receiver = pair(clock)
    message = signed(sender)
    assert receiver.check(message.auth_data, message.body) is True
    assert receiver.check(message.auth_data, message.body) is False
    # Also after a trip over the wire, and with the ts given as an int.
    decoded = Message.decode(message.encode())
    assert receiver.check(decoded.auth_data, decoded.body) is False
    ts = decoded.auth_data.fields["ts"]
    assert isinstance(ts, bytes)
    decoded.auth_data.fields["ts"] = int.from_bytes(ts, "big")
    assert receiver.check(decoded.auth_data, decoded.body) is False
    # Fresh messages still pass.
    for _ in range(3):
        fresh = signed(sender)
        assert receiver.check(fresh.auth_data, fresh.body) is True


def test_with_max_skew_none_a_replay_is_accepted() -> None:
    """Documented: max_skew=None turns replay protection off."""
    plugin = HMACAuthPlugin({"secret": SECRET, "max_skew": None})
    message = signed(plugin)
    assert plugin.check(message.auth_data, message.body)
    assert plugin.check(message.auth_data, message.body)


def test_timestamps_outside_the_skew_are_rejected() -> None:
    clock = FakeClock()
    sender, receiver = pair(clock, max_skew=30)
    old = signed(sender)
    clock.now = START + 31
    assert receiver.check(old.auth_data, old.body) is False
    clock.now = START - 31
    assert receiver.check(old.auth_data, old.body) is False
    # The stale message was not remembered: inside the window it passes.
    clock.now = START + 30
    assert receiver.check(old.auth_data, old.body) is True


def test_skew_bounds_are_inclusive() -> None:
    clock = FakeClock()
    sender, receiver = pair(clock, max_skew=30)
    past, future, beyond = signed(sender), signed(sender), signed(sender)
    clock.now = START + 30
    assert receiver.check(past.auth_data, past.body) is True
    clock.now = START - 30
    assert receiver.check(future.auth_data, future.body) is True
    clock.now = START - 30.5
    assert receiver.check(beyond.auth_data, beyond.body) is False
    clock.now = START + 30.5
    assert receiver.check(beyond.auth_data, beyond.body) is False


def test_fractional_skew() -> None:
    clock = FakeClock(START + 0.9)
    sender, receiver = pair(clock, max_skew=0.5)
    message = signed(sender)  # ts is START: whole seconds
    assert receiver.check(message.auth_data, message.body) is False
    clock.now = START + 0.5
    assert receiver.check(message.auth_data, message.body) is True


def test_make_issues_a_fresh_nonce_and_ts_with_max_skew() -> None:
    clock = FakeClock()
    sender, receiver = pair(clock)
    message = signed(sender)
    first = dict(message.auth_data.fields)
    assert receiver.check(message.auth_data, message.body)
    clock.now += 5
    # A reply that reuses the received message (an echo) is signed anew...
    sender.make(message.auth_data, message.body)
    assert message.auth_data.fields["nonce"] != first["nonce"]
    assert message.auth_data.fields["ts"] == int(START + 5).to_bytes(4, "big")
    # ... so the receiver, which saw the old nonce, accepts it.
    assert receiver.check(message.auth_data, message.body) is True


def test_a_forgery_does_not_poison_the_cache() -> None:
    clock = FakeClock()
    sender, receiver = pair(clock)
    genuine = signed(sender)
    forged = Message.prepare(Body.prepare(b"transfer 99", b"bank"))
    forged.auth_data.fields.update(genuine.auth_data.fields)
    assert receiver.check(forged.auth_data, forged.body) is False
    assert receiver.check(genuine.auth_data, genuine.body) is True


def test_same_nonce_with_another_ts_is_a_replay() -> None:
    clock = FakeClock()
    sender, receiver = pair(clock)
    first = signed(sender)
    assert receiver.check(first.auth_data, first.body)
    clock.now += 1
    again = Message.prepare(Body.prepare(b"transfer 10", b"bank"))
    again.auth_data.fields["nonce"] = first.auth_data.fields["nonce"]
    # A plugin with replay protection off keeps the given nonce and stamps a new ts.
    HMACAuthPlugin({"secret": SECRET, "max_skew": None}, clock=clock).make(
        again.auth_data, again.body
    )
    assert again.auth_data.fields["ts"] != first.auth_data.fields["ts"]
    assert pair(clock)[1].check(again.auth_data, again.body) is True  # a valid MAC
    assert receiver.check(again.auth_data, again.body) is False


def test_expired_nonces_are_forgotten_and_stay_rejected() -> None:
    clock = FakeClock()
    sender, receiver = pair(clock, max_skew=10, replay_cache_size=100)
    old = signed(sender)
    assert receiver.check(old.auth_data, old.body)
    for step in range(1, 40):
        clock.now = START + step
        message = signed(sender)
        assert receiver.check(message.auth_data, message.body)
    # Only the nonces of the last max_skew seconds are kept...
    assert len(receiver._seen) <= 11
    # ... and even with the clock set back, a forgotten nonce stays rejected.
    clock.now = START
    assert receiver.check(old.auth_data, old.body) is False


def test_a_full_cache_never_lets_a_replay_through() -> None:
    clock = FakeClock()
    sender, receiver = pair(clock, max_skew=60, replay_cache_size=3)
    messages = []
    for step in range(5):
        clock.now = START + step
        message = signed(sender)
        messages.append(message)
        assert receiver.check(message.auth_data, message.body)
    assert len(receiver._seen) == 3
    for message in messages:  # forgotten or remembered, none passes twice
        assert receiver.check(message.auth_data, message.body) is False
    # Forgetting raised the horizon to START + 1: fresh messages stamped at
    # or before it are refused (fail closed), later ones pass.
    clock.now = START + 1
    assert receiver.check(*fields_of(signed(sender))) is False
    clock.now = START + 2
    assert receiver.check(*fields_of(signed(sender))) is True


def fields_of(message: Message) -> tuple[AuthFields, Body]:
    return message.auth_data, message.body


def test_a_nan_clock_rejects() -> None:
    clock = FakeClock()
    sender, receiver = pair(clock)
    message = signed(sender)
    clock.now = math.nan
    assert receiver.check(message.auth_data, message.body) is False


def test_one_instance_signs_and_checks_both_ways() -> None:
    """An instance on each side: requests and replies cross, each checked once."""
    clock = FakeClock()
    client, server = pair(clock)
    for step in range(5):
        clock.now = START + step
        request = signed(client, b"ping %d" % step)
        assert server.check(request.auth_data, request.body)
        server.make(request.auth_data, request.body)  # echo the request back
        assert client.check(request.auth_data, request.body)
        assert not client.check(request.auth_data, request.body)
