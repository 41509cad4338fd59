"""Hypothesis strategies for the default message classes."""

from __future__ import annotations

from hypothesis import strategies as st

from netaio_core import AuthFields, AuthValue, Body, Header, Message, MessageType

message_types = st.sampled_from(list(MessageType))
uris = st.binary(max_size=64)
contents = st.binary(max_size=512)
auth_keys = st.text(max_size=24)  # any code point but surrogates, so non-ASCII too
auth_values: st.SearchStrategy[AuthValue] = st.one_of(
    st.binary(max_size=300),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.integers(),  # hypothesis' unbounded ints reach well past 2**64
    st.sampled_from([0, 255, 256, 2**16, 2**32 - 1, 2**32, -(2**32), 2**2040, -(2**2048)]),
)
auth_dicts = st.dictionaries(auth_keys, auth_values, max_size=8)
u16 = st.integers(0, 0xFFFF)
headers = st.builds(Header, message_types, u16, u16, st.integers(0, 0xFFFFFFFF))
bodies = st.builds(Body.prepare, contents, uris)
auth_fields = st.builds(AuthFields, auth_dicts)
messages = st.builds(Message.prepare, bodies, message_types, auth_fields)
