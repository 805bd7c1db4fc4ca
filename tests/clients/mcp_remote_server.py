"""A remote MCP server built on the official Python SDK (`mcp`): Streamable HTTP behind TLS, with a
bearer token, as a hosted MCP server would be. Steward reaches it through `steward gateway`.

Used by crates/steward-cli/tests/it/mcp_remote.rs. Configuration from the environment:

    MCP_PORT          the loopback port to listen on (127.0.0.1)
    MCP_CERT_FILE     the server certificate chain (PEM) and
    MCP_KEY_FILE      its private key (PEM), from the test's throwaway PKI
    MCP_HOST          the host name clients use (the Host header is checked against it: DNS
                      rebinding protection, as the SDK does on localhost)
    MCP_TOKEN         the bearer token every request must carry (else 401)
    MCP_REQUEST_LOG   a file: one JSON line per HTTP request, appended *before* the token check:
                      {"method", "path", "authorization", "session", "protocol_version",
                       "jsonrpc_method", "tool", "status"} — so the test can assert which token
                      the server saw, and that a denied tool never arrived; plus
                      {"outcome": "finished" | "cancelled", "tool", "step"} when `count_slowly` ends

Tools: `read_item(item_id)` → {"item_id", "name"}; `delete_repo(repo)` → {"deleted"} (destructive:
the test denies it through Steward); `approve_me(note)` → {"note"} (the test puts it behind an
approval); `count_slowly(steps, delay_ms)` → {"steps"}, with a progress notification before each
pause (the client sees them before the result only if every hop streams); `echo_token()` →
{"token": MCP_TOKEN}, a server that echoes its credential (Steward must scrub it).
"""

import asyncio
import json
import os
import sys
from typing import TypedDict

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PORT = int(os.environ["MCP_PORT"])
HOST = os.environ["MCP_HOST"]
TOKEN = os.environ["MCP_TOKEN"]
REQUEST_LOG = os.environ["MCP_REQUEST_LOG"]

server = MCPServer("steward-test-remote", version="1.0.0")


class Item(TypedDict):
    item_id: str
    name: str


class Deleted(TypedDict):
    deleted: str


class Noted(TypedDict):
    note: str


# Typed results: the SDK sends them as `structuredContent` (and as text).
@server.tool(description="Read one item of the test store.")
def read_item(item_id: str) -> Item:
    return {"item_id": item_id, "name": f"item {item_id}"}


@server.tool(description="Delete a repository. Destructive.")
def delete_repo(repo: str) -> Deleted:
    return {"deleted": repo}


@server.tool(description="Something a person must approve first.")
def approve_me(note: str) -> Noted:
    return {"note": note}


class Token(TypedDict):
    token: str


@server.tool(description="Echoes the bearer token this server expects (a careless server).")
def echo_token() -> Token:
    return {"token": TOKEN}


class Counted(TypedDict):
    steps: int


@server.tool(description="Counts slowly, reporting progress after each step.")
async def count_slowly(steps: int, delay_ms: int, ctx: Context) -> Counted:
    # Progress goes out on the call's SSE stream while the call is still running: a client sees it
    # before the result only if every hop streams.
    step = 0
    try:
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step}")
            await asyncio.sleep(delay_ms / 1000)
    except asyncio.CancelledError:
        # The client closed the call's stream (its cancellation at 2026-07-28) and every hop passed
        # that on.
        append({"outcome": "cancelled", "tool": "count_slowly", "step": step})
        raise
    append({"outcome": "finished", "tool": "count_slowly", "step": step})
    return {"steps": steps}


def append(record: dict) -> None:
    with open(REQUEST_LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")


def jsonrpc_of(body: bytes) -> tuple:
    """The JSON-RPC method and tool name of a request body, when it is one JSON-RPC object."""
    try:
        message = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(message, dict):
        return None, None
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    return message.get("method"), params.get("name")


class BearerAndRecord:
    """Records every request, then refuses those without `authorization: Bearer MCP_TOKEN`."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        # Read the whole body (requests are small JSON-RPC messages), then hand it on unchanged.
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        method, tool = jsonrpc_of(body) if body else (None, None)
        authorized = headers.get("authorization") == f"Bearer {TOKEN}"
        record = {
            "method": scope["method"],
            "path": scope["path"],
            "host": headers.get("host"),
            "authorization": headers.get("authorization"),
            "session": headers.get("mcp-session-id"),
            "protocol_version": headers.get("mcp-protocol-version"),
            "jsonrpc_method": method,
            "tool": tool,
            "status": None if authorized else 401,
        }
        append(record)
        if not authorized:
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"error":"invalid_token"}'})
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def main() -> None:
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[HOST, f"{HOST}:{PORT}"],
        allowed_origins=[],
    )
    app = server.streamable_http_app(transport_security=security, host=HOST)
    config = uvicorn.Config(
        BearerAndRecord(app),
        host="127.0.0.1",
        port=PORT,
        ssl_certfile=os.environ["MCP_CERT_FILE"],
        ssl_keyfile=os.environ["MCP_KEY_FILE"],
        log_level="warning",
        lifespan="on",
    )
    print(f"listening on https://{HOST}:{PORT}/mcp", file=sys.stderr, flush=True)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
