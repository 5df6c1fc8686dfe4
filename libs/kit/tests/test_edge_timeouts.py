"""The edge's slow-body timeout: a JSON or form body that stops arriving is a 408 problem, and the
app never sees the request; a body that keeps arriving is passed on whole."""

import asyncio
import json

from sipas_kit.edge import Edge


async def run(chunks: list[bytes], stall: bool, media: bytes = b"application/json") -> tuple[list[dict], list[bytes]]:
    seen: list[bytes] = []

    async def app(scope, receive, send):  # the service behind the edge
        message = await receive()
        seen.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    pending = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    if not stall:
        pending[-1]["more_body"] = False

    async def receive():
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()  # the client sends nothing more

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/x", "query_string": b"", "client": ("10.0.0.1", 1),
             "headers": [(b"content-type", media)]}
    edge = Edge(app, max_body_bytes=4096, max_upload_bytes=4096, json_max_depth=8, rate_limits={}, body_timeout=0.2)
    await edge(scope, receive, send)
    return sent, seen


def test_a_body_that_stops_arriving_is_a_408_problem():
    for media in (b"application/json", b"application/x-www-form-urlencoded"):
        sent, seen = asyncio.run(run([b'{"a":', b" 1"], stall=True, media=media))
        assert sent[0]["status"] == 408 and seen == []
        assert (b"content-type", b"application/problem+json") in sent[0]["headers"]
        problem = json.loads(sent[1]["body"])
        assert problem["status"] == 408 and "stopped arriving" in problem["detail"]


def test_a_body_that_keeps_arriving_reaches_the_app_whole():
    sent, seen = asyncio.run(run([b'{"a":', b" 1}"], stall=False))
    assert sent[0]["status"] == 200 and seen == [b'{"a": 1}']
