"""Stress for the ThreadSanitizer build of the engine (``make tsan``).

Many clients at once against a local scripted server: sync loops started and
stopped, requests in flight cancelled, history paged, room state loaded into
the cache among sync batches, clients dropped while
their long-polls run, batches freed on the engine thread. TSan (preloaded)
reports any data race between the engine thread and Python's; the script
itself checks that the engine keeps answering to the end.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import sys

from matridge.matrix import MatrixClient, MatrixError, NetworkError
from tests.harness.fake_homeserver import Answer, fake_homeserver

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
CLIENTS = 40


def sync_body(i: int) -> bytes:
    events = [
        {
            "type": "m.room.message",
            "event_id": f"$e{i}-{k}",
            "sender": "@a:x",
            "origin_server_ts": 1,
            "content": {
                "msgtype": "m.text",
                "body": f"m{k}",
                "format": "org.matrix.custom.html",
                "formatted_body": f"<b>m{k}</b>",
            },
        }
        for k in range(50)
    ]
    return json.dumps(
        {
            "next_batch": f"s{i}",
            "rooms": {"join": {"!r:x": {"timeline": {"events": events}}}},
        }
    ).encode()


async def main() -> None:
    with fake_homeserver() as hs:
        # Cancelled transfers close connections under the server's feet.
        hs.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        hs.route(
            "/_matrix/client/v3/sync",
            *[Answer(body=sync_body(i), delay=0.01) for i in range(5)],
        )
        hs.route(
            "/_matrix/client/versions",
            Answer(body={"versions": ["v1.11"]}, delay=0.005),
        )
        page = {
            "chunk": json.loads(sync_body(0))["rooms"]["join"]["!r:x"]["timeline"][
                "events"
            ],
            "start": "a",
            "end": "b",
        }
        # The server sees paths percent-encoded, as the engine sends them.
        room = "/_matrix/client/v3/rooms/%21r%3Ax"
        hs.route(f"{room}/messages", Answer(body=page, delay=0.005))
        member = {
            "type": "m.room.member",
            "state_key": "@a:x",
            "sender": "@a:x",
            "content": {"membership": "join", "displayname": "A"},
        }
        hs.route(
            f"{room}/state", Answer(body=json.dumps([member]).encode(), delay=0.005)
        )
        answered = 0
        for rnd in range(ROUNDS):
            clients = [
                MatrixClient(hs.base_url, "token", user_id="@me:x")
                for _ in range(CLIENTS)
            ]
            batches: list[int] = []

            def on_batch(c: MatrixClient, b: object, seen: list[int] = batches) -> None:
                seen.append(len(b.rooms))  # type: ignore[attr-defined]
                c.rooms.get("!r:x")  # a snapshot while the engine writes
                c.sync_ack(b)  # type: ignore[arg-type]

            for c in clients:
                c.start_sync(
                    lambda b, c=c: on_batch(c, b), lambda e, fatal: None, None, 200
                )
            calls = []
            for c in clients:
                calls.append(asyncio.ensure_future(c.versions()))
                calls.append(
                    asyncio.ensure_future(c.history("!r:x", limit=120, page_size=50))
                )
                # Applied to the room cache on the engine thread, among syncs.
                calls.append(asyncio.ensure_future(c.load_room_state("!r:x")))
            await asyncio.sleep(random.uniform(0.01, 0.1))
            for f in calls[::3]:
                f.cancel()  # cancellations reach the engine mid-transfer
            for c in clients[::2]:
                c.stop_sync()
            results = await asyncio.gather(*calls, return_exceptions=True)
            answered += sum(1 for r in results if not isinstance(r, BaseException))
            for c in clients:
                c.stop_sync()
            del clients, calls, results
            gc.collect()
            print(f"round {rnd}: {len(batches)} batches", flush=True)
        # The engine still serves a fresh client after all that.
        final = MatrixClient(hs.base_url)
        try:
            await final.versions()
        except (MatrixError, NetworkError) as e:
            raise SystemExit(f"the engine stopped answering: {e}") from e
        print(f"ok: {answered} calls answered", flush=True)
    # The server's thread has ended with shutdown(); joined, it is not
    # reported as a leaked thread when the interpreter exits. Its handler
    # threads that finished are detached when their Thread objects are
    # freed, which a reference cycle can put off past exit: collect them.
    hs.thread.join(timeout=10)
    gc.collect()


asyncio.run(main())
