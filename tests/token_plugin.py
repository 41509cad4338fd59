"""A tiny auth plugin for tests that may import only netaio_core."""

from __future__ import annotations

from netaio_core import AuthFieldsProtocol, BodyProtocol, MessageProtocol, make_error_response


class TokenPlugin:
    """A fixed token in a field of its own name.

    It records every check so that tests can see the order of checks.
    """

    def __init__(self, field: str, token: bytes, log: list[str] | None = None) -> None:
        self.field = field
        self.token = token
        self.log = [] if log is None else log

    def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None:
        auth_fields.fields[self.field] = self.token

    def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
        self.log.append(self.field)
        return auth_fields.fields.get(self.field) == self.token

    def error(self) -> MessageProtocol:
        return make_error_response(f"auth failed: {self.field}")
