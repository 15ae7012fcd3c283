"""An upstream MCP server built with the official MCP Python SDK (mcp 2.x), which speaks
both protocol eras. Run: modern_server.py PORT [stateless]."""

import asyncio
import sys

from mcp.server.mcpserver import Context, MCPServer

port = int(sys.argv[1])
stateless = len(sys.argv) > 2 and sys.argv[2] == "stateless"

server = MCPServer("modern-tools")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return f"modern:{text}"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def search(query: str) -> str:
    """Search the modern index."""
    return f"modern results for {query}"


@server.tool()
async def slow(steps: int, ctx: Context) -> str:
    """Report progress for each step, then finish."""
    for i in range(steps):
        await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        await asyncio.sleep(0.05)
    return f"done after {steps}"


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep, so a caller can cancel."""
    await asyncio.sleep(seconds)
    return "slept"


@server.tool()
def explode() -> str:
    """Always fails."""
    raise ValueError("the tool exploded")


@server.tool()
def whoami(ctx: Context) -> str:
    """The Authorization header this server was called with."""
    headers = ctx.headers or {}
    return headers.get("authorization", "none")


@server.prompt()
def greet(name: str) -> str:
    """A greeting prompt."""
    return f"Say hello to {name}."


@server.resource("docs://readme")
def readme() -> str:
    """The readme."""
    return "modern readme"


@server.resource("greeting://{name}")
def greeting(name: str) -> str:
    """A greeting by name."""
    return f"Hello, {name}!"


server.run(transport="streamable-http", host="127.0.0.1", port=port, stateless_http=stateless)
