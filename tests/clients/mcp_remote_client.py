"""An MCP client built on the official Python SDK (`mcp`): Streamable HTTP to a remote MCP server
through `steward gateway` (`http://127.0.0.1:<gateway>/<integration_name>/mcp`, the gateway token
as its bearer token), as an agent would be configured.

Used by crates/steward-cli/tests/it/mcp_remote.rs. Usage (the plan in the environment, as the other
client scripts take their configuration, or as the first argument):

    MCP_PLAN=PLAN_JSON mcp_remote_client.py

PLAN_JSON: {"url": "...", "token": "...", "mode": "auto" | "legacy", "ca_file"?: "...",
            "calls": [{"tool": "...", "arguments": {...}, "progress"?: true, "cancel_after_ms"?: N}]}

Prints one JSON document on stdout:
    {"protocol_version", "negotiated_by", "tools": [names],
     "results": [{"tool", "ok": true, "is_error", "structured", "text",
                  "progress": [{"progress", "message", "at_ms"}], "result_at_ms"}
                 | {"tool", "ok": false, "error": {"class", "code", "message"}}
                 | {"tool", "ok": false, "cancelled": true, "progress"}],
     "http": [{"method", "status", "content_type", "steward_error", "approval_id", "body"}]}
"http" lists every HTTP answer the SDK got, in order; "body" is the parsed JSON of an answer with
status >= 400 (how a refusal looks on the wire; the SDK itself reports a non-JSON-RPC error body
only as a generic error). Any other exception exits non-zero with the traceback on stderr.
"""

import asyncio
import json
import os
import ssl
import sys
import time

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def main(plan: dict) -> dict:
    answers: list = []

    async def record(response: httpx2.Response) -> None:
        entry = {
            "method": response.request.method,
            "status": response.status_code,
            "content_type": response.headers.get("content-type"),
            "steward_error": response.headers.get("steward-error"),
            "approval_id": response.headers.get("steward-approval-id"),
            "body": None,
        }
        if response.status_code >= 400:
            await response.aread()
            try:
                entry["body"] = json.loads(response.content)
            except ValueError:
                entry["body"] = response.content.decode("utf-8", "replace")
        answers.append(entry)

    http_client = httpx2.AsyncClient(
        headers={"authorization": f"Bearer {plan['token']}"},
        # "ca_file": to talk to the server directly over TLS (the gateway itself is plain HTTP).
        verify=ssl.create_default_context(cafile=plan["ca_file"]) if "ca_file" in plan else True,
        timeout=120,
        event_hooks={"response": [record]},
    )
    report: dict = {"tools": [], "results": [], "http": answers}
    async with http_client, Client(
        streamable_http_client(plan["url"], http_client=http_client),
        read_timeout_seconds=120,
        mode=plan.get("mode", "auto"),
    ) as client:
        report["protocol_version"] = client.protocol_version
        report["negotiated_by"] = "initialize" if client.session.initialize_result is not None else "discover"
        listed = await client.list_tools()
        report["tools"] = sorted(tool.name for tool in listed.tools)
        for step in plan.get("calls", []):
            started = time.monotonic()
            progress: list = []

            async def on_progress(done, total, message, progress=progress, started=started):
                progress.append({"progress": done, "message": message, "at_ms": ms_since(started)})

            call = client.call_tool(
                step["tool"],
                step.get("arguments", {}),
                progress_callback=on_progress if step.get("progress") else None,
            )
            if "cancel_after_ms" in step:
                # The caller gives up: at 2026-07-28 the SDK closes the call's response stream, which
                # is the cancellation the server sees.
                try:
                    await asyncio.wait_for(call, step["cancel_after_ms"] / 1000)
                except TimeoutError:
                    report["results"].append(
                        {"tool": step["tool"], "ok": False, "cancelled": True, "progress": progress}
                    )
                    continue
                raise RuntimeError(f"{step['tool']} finished before it was cancelled")
            try:
                result = await call
            except Exception as error:  # the SDK's error for a JSON-RPC error or a refused POST
                report["results"].append(
                    {
                        "tool": step["tool"],
                        "ok": False,
                        "error": {
                            "class": type(error).__name__,
                            "code": getattr(getattr(error, "error", None), "code", None),
                            "message": str(error),
                        },
                    }
                )
                continue
            texts = [block.text for block in result.content if getattr(block, "type", None) == "text"]
            report["results"].append(
                {
                    "tool": step["tool"],
                    "ok": True,
                    "is_error": bool(result.is_error),
                    "structured": result.structured_content,
                    "text": "\n".join(texts),
                    "progress": progress,
                    "result_at_ms": ms_since(started),
                }
            )
    return report


if __name__ == "__main__":
    plan = json.loads(os.environ["MCP_PLAN"] if "MCP_PLAN" in os.environ else sys.argv[1])
    print(json.dumps(asyncio.run(main(plan))))
