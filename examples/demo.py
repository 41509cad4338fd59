"""netaio demo: an item service and clients talking to it, on 127.0.0.1.

The service answers requests, creates, updates and deletes items, and
notifies subscribers of every change. Every message is signed and checked
with HMAC-SHA256 (``netaio.HMACAuthPlugin``, replay protection on); a
client with the wrong secret is turned away. The conversation is printed as
it happens, and the program exits by itself.

Run it with ``python examples/demo.py`` (or ``nox -s demo``).
"""

from __future__ import annotations

import asyncio
import json
import sys

import netaio
from netaio import (
    AuthFieldsProtocol,
    Body,
    BodyProtocol,
    HMACAuthPlugin,
    Message,
    MessageType,
    TCPClient,
    TCPServer,
)

SECRET = "correct horse battery staple, but longer and random in real life"
TIMEOUT = 5  # seconds any single step may take
ITEMS = b"/items"


def hmac_plugin(secret: str) -> HMACAuthPlugin:
    """A plugin per endpoint: with ``max_skew`` each one remembers the
    nonces it has accepted and refuses a replayed message."""
    return HMACAuthPlugin({"secret": secret, "max_skew": 30})


class ServiceAuth(HMACAuthPlugin):
    """The service's plugin: HMAC-SHA256, and a line in the conversation
    for each message it refuses (the server then replies AUTH_ERROR)."""

    def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
        accepted = super().check(auth_fields, body)
        if not accepted:
            print(f"{'server':<8} !! HMAC check failed: request refused, AUTH_ERROR sent")
        return accepted


def message(message_type: MessageType, uri: bytes, content: bytes = b"") -> Message:
    return Message.prepare(Body.prepare(content, uri), message_type)


def show(who: str, arrow: str, msg: Message | None) -> None:
    """Print one line of the conversation."""
    if msg is None:
        print(f"{who:<8} {arrow} nothing: the reply failed {who}'s own auth check")
        return
    content = msg.body.content.decode(errors="replace")
    kind, uri = msg.header.message_type.name, msg.body.uri.decode()
    print(f"{who:<8} {arrow} {kind:<19} {uri:<7} {content}".rstrip())


# -- the service -----------------------------------------------------------------


def build_service() -> TCPServer[Message]:
    """An item store: REQUEST lists, CREATE/UPDATE/DELETE change, SUBSCRIBE
    and UNSUBSCRIBE manage who is notified of changes."""
    service_auth = ServiceAuth({"secret": SECRET, "max_skew": 30})
    server = TCPServer(host="127.0.0.1", port=0, auth_plugin=service_auth)
    items: dict[int, str] = {}
    next_id = 1

    def reply(message_type: MessageType, payload: object) -> Message:
        return message(message_type, ITEMS, json.dumps(payload).encode())

    async def changed(event: str, item_id: int, name: str | None) -> None:
        payload = {"event": event, "id": item_id, "name": name}
        await server.notify(ITEMS, reply(MessageType.NOTIFY_URI, payload))

    @server.on((MessageType.REQUEST_URI, b"/hello"))
    def hello(msg: Message, writer: asyncio.StreamWriter) -> Message:
        name = msg.body.content.decode() or "stranger"
        return message(MessageType.RESPOND_URI, b"/hello", f"hello, {name}".encode())

    @server.on((MessageType.REQUEST_URI, ITEMS))
    def list_items(msg: Message, writer: asyncio.StreamWriter) -> Message:
        return reply(MessageType.RESPOND_URI, items)

    @server.on((MessageType.CREATE_URI, ITEMS))
    async def create(msg: Message, writer: asyncio.StreamWriter) -> Message:
        nonlocal next_id
        item_id, next_id = next_id, next_id + 1
        items[item_id] = json.loads(msg.body.content)["name"]
        await changed("created", item_id, items[item_id])
        return reply(MessageType.OK, {"id": item_id, "name": items[item_id]})

    @server.on((MessageType.UPDATE_URI, ITEMS))
    async def update(msg: Message, writer: asyncio.StreamWriter) -> Message:
        request = json.loads(msg.body.content)
        if request["id"] not in items:
            return reply(MessageType.NOT_FOUND, {"id": request["id"]})
        items[request["id"]] = request["name"]
        await changed("updated", request["id"], request["name"])
        return reply(MessageType.OK, request)

    @server.on((MessageType.DELETE_URI, ITEMS))
    async def delete(msg: Message, writer: asyncio.StreamWriter) -> Message:
        item_id = json.loads(msg.body.content)["id"]
        if items.pop(item_id, None) is None:
            return reply(MessageType.NOT_FOUND, {"id": item_id})
        await changed("deleted", item_id, None)
        return reply(MessageType.OK, {"id": item_id})

    @server.on((MessageType.SUBSCRIBE_URI, ITEMS))
    def subscribe(msg: Message, writer: asyncio.StreamWriter) -> Message:
        server.subscribe(ITEMS, writer)
        return message(MessageType.CONFIRM_SUBSCRIBE, ITEMS)

    @server.on((MessageType.UNSUBSCRIBE_URI, ITEMS))
    def unsubscribe(msg: Message, writer: asyncio.StreamWriter) -> Message:
        server.unsubscribe(ITEMS, writer)
        return message(MessageType.CONFIRM_UNSUBSCRIBE, ITEMS)

    return server


# -- the clients -----------------------------------------------------------------


async def ask(client: TCPClient[Message], who: str, request: Message) -> Message | None:
    """Send one request and wait for its reply, printing both."""
    show(who, "->", request)
    await client.send(request)
    answer = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    show(who, "<-", answer)
    return answer


async def main() -> int:
    async with build_service() as server:
        port = server.port
        print(f"netaio {netaio.version()} demo: item service on 127.0.0.1:{port}")
        print("every message carries an HMAC-SHA256 tag; replays are refused\n")

        alice = TCPClient("127.0.0.1", port, auth_plugin=hmac_plugin(SECRET))
        watcher = TCPClient("127.0.0.1", port, auth_plugin=hmac_plugin(SECRET))
        mallory = TCPClient("127.0.0.1", port, auth_plugin=hmac_plugin("a guessed secret"))
        notifications: asyncio.Queue[Message] = asyncio.Queue()

        def on_notify(msg: Message, writer: asyncio.StreamWriter) -> None:
            notifications.put_nowait(msg)

        watcher.add_handler((MessageType.NOTIFY_URI, ITEMS), on_notify)

        async with alice, watcher, mallory:
            for client in (alice, watcher, mallory):
                await client.connect()

            print("# request / response")
            await ask(alice, "alice", message(MessageType.REQUEST_URI, b"/hello", b"alice"))

            print("\n# subscribe: watcher is told of every change to /items")
            await ask(watcher, "watcher", message(MessageType.SUBSCRIBE_URI, ITEMS))
            listening = asyncio.create_task(watcher.receive_loop())

            print("\n# create, update, delete")
            changes = [
                (MessageType.CREATE_URI, {"name": "teapot"}),
                (MessageType.CREATE_URI, {"name": "kettle"}),
                (MessageType.UPDATE_URI, {"id": 1, "name": "blue teapot"}),
                (MessageType.DELETE_URI, {"id": 2}),
            ]
            for message_type, payload in changes:
                request = message(message_type, ITEMS, json.dumps(payload).encode())
                await ask(alice, "alice", request)
                show("watcher", "<-", await asyncio.wait_for(notifications.get(), TIMEOUT))
            await ask(alice, "alice", message(MessageType.DELETE_URI, ITEMS, b'{"id": 2}'))
            await ask(alice, "alice", message(MessageType.REQUEST_URI, ITEMS))

            print("\n# a client with the wrong secret")
            answer = await ask(mallory, "mallory", message(MessageType.REQUEST_URI, ITEMS))

            print("\n# unsubscribe")
            listening.cancel()  # one reader per connection: ask() reads the reply
            await asyncio.gather(listening, return_exceptions=True)
            await ask(watcher, "watcher", message(MessageType.UNSUBSCRIBE_URI, ITEMS))

    print("\ndone: the server stopped and every connection is closed")
    return 0 if answer is None else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
