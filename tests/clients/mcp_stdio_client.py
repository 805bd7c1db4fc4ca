"""An MCP client built on the official Python SDK (`mcp`), spawning `steward mcp` over stdio (or,
given a URL, talking to `steward mcp --transport http` over Streamable HTTP with a bearer token).

Used by crates/steward-cli/tests/it/mcp.rs. Usage:

    mcp_stdio_client.py PLAN_JSON

PLAN_JSON: {"command": "...", "args": [...], "env": {...}  |  "url": "...", "token": "...",
            "mode": "auto" | "legacy",
            "calls": [{"tool": "...", "arguments": {...}, "progress": true}]}

Prints one JSON document on stdout: the negotiated protocol version, the tools as listed, and per
call {"is_error", "text", "structured", "progress": [messages]}. Any exception exits non-zero with
the traceback on stderr, so the Rust test shows what went wrong.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


async def main(plan: dict) -> dict:
    if "url" in plan:
        headers = {"authorization": f"Bearer {plan['token']}"}
        params = streamable_http_client(plan["url"], http_client=httpx2.AsyncClient(headers=headers, timeout=120))
    else:
        params = StdioServerParameters(command=plan["command"], args=plan["args"], env=plan.get("env"))
    report: dict = {"tools": [], "results": []}
    async with Client(params, read_timeout_seconds=120, mode=plan.get("mode", "auto")) as client:
        report["protocol_version"] = client.protocol_version
        report["negotiated_by"] = "initialize" if client.session.initialize_result is not None else "discover"

        listed = await client.list_tools()
        report["tools"] = [tool.model_dump(by_alias=True, mode="json", exclude_none=True) for tool in listed.tools]

        for step in plan.get("calls", []):
            progress: list = []

            async def on_progress(done, total, message, progress=progress):
                progress.append({"progress": done, "total": total, "message": message})

            result = await client.call_tool(
                step["tool"],
                step.get("arguments", {}),
                progress_callback=on_progress if step.get("progress") else None,
            )
            texts = [block.text for block in result.content if getattr(block, "type", None) == "text"]
            report["results"].append(
                {
                    "is_error": bool(result.is_error),
                    "text": "\n".join(texts),
                    "content_items": len(result.content),
                    "structured": result.structured_content,
                    "progress": progress,
                }
            )
    return report


if __name__ == "__main__":
    plan = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(main(plan))))
