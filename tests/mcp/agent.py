"""An agent built with the official MCP Python SDK's client (mcp 2.x). It connects to
sluice, runs the steps given as JSON on argv[4], and prints one JSON line per step.

agent.py URL HEADERS MODE STEPS: HEADERS a JSON object of HTTP headers (the API key and
gateway slug), MODE being legacy (the initialize handshake) or auto
(server/discover first, as today's SDKs do). A step is ["list_tools"], ["call", name,
args], ["progress", name, args], ["list_prompts"], ["prompt", name, args],
["list_resources"], ["list_templates"], ["read", uri], ["ping"], ["touch", path] (tell the
test this point is reached), ["wait_file", path] (wait until the test says go on) or
["wait_notification", method] (wait up to 10 s for a server notification) or ["listen"]
(open a 2026-07-28 `subscriptions/listen` stream for list changes, whose events count
as notifications). A failed step
prints {"error": {"code": ..., "message": ..., "data": ...}}.
"""

import asyncio
import json
import os
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

url, headers, mode, steps = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])


def out(value):
    print(json.dumps(value), flush=True)


async def step(client, s):
    kind = s[0]
    if kind == "list_tools":
        r = await client.list_tools()
        return {"tools": sorted(t.name for t in r.tools)}
    if kind in ("call", "progress"):
        seen = []

        async def on_progress(progress, total, message):
            seen.append([progress, total, message])

        r = await client.call_tool(s[1], s[2], progress_callback=on_progress if kind == "progress" else None)
        texts = [c.text for c in r.content if getattr(c, "type", "") == "text"]
        return {"text": texts, "is_error": bool(r.is_error), "progress": seen}
    if kind == "list_prompts":
        r = await client.list_prompts()
        return {"prompts": sorted(p.name for p in r.prompts)}
    if kind == "prompt":
        r = await client.get_prompt(s[1], s[2])
        return {"messages": [m.content.text for m in r.messages]}
    if kind == "list_resources":
        r = await client.list_resources()
        return {"resources": sorted(str(x.uri) for x in r.resources)}
    if kind == "list_templates":
        r = await client.list_resource_templates()
        return {"templates": sorted(t.uri_template for t in r.resource_templates)}
    if kind == "read":
        r = await client.read_resource(s[1])
        return {"contents": [c.text for c in r.contents]}
    if kind == "touch":
        with open(s[1], "w") as f:
            f.write("1")
        return {"touched": True}
    if kind == "wait_file":
        while not os.path.exists(s[1]):
            await asyncio.sleep(0.05)
        return {"waited": True}
    if kind == "wait_notification":
        for _ in range(200):
            if s[1] in seen_notifications:
                return {"notified": s[1]}
            await asyncio.sleep(0.05)
        return {"notified": None, "seen": sorted(set(seen_notifications))}
    if kind == "listen":
        ready = asyncio.Event()
        honored = []

        async def run():
            async with client.listen(
                tools_list_changed=True, prompts_list_changed=True, resources_list_changed=True
            ) as sub:
                honored.append(sub.honored)
                ready.set()
                async for event in sub:
                    seen_notifications.append(EVENT_METHODS.get(type(event).__name__, type(event).__name__))

        listeners.append(asyncio.create_task(run()))
        await asyncio.wait_for(ready.wait(), 10)
        return {"listening": bool(getattr(honored[0], "tools_list_changed", False))}
    if kind == "ping":
        await client.send_ping()
        return {"pong": True}
    raise ValueError(f"unknown step {kind}")


seen_notifications = []
listeners = []
EVENT_METHODS = {
    "ToolsListChanged": "notifications/tools/list_changed",
    "PromptsListChanged": "notifications/prompts/list_changed",
    "ResourcesListChanged": "notifications/resources/list_changed",
}


async def on_message(message):
    method = getattr(getattr(message, "root", message), "method", None)
    if method:
        seen_notifications.append(method)


async def main():
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    transport = streamable_http_client(url, http_client=http)
    async with Client(transport, mode=mode, cache=None, message_handler=on_message) as client:
        out({"protocol_version": client.session.protocol_version})
        for s in steps:
            try:
                out(await step(client, s))
            except MCPError as e:
                err = e.error
                out({"error": {"code": err.code, "message": err.message, "data": err.data}})
        for task in listeners:
            task.cancel()


asyncio.run(main())
