"""An upstream MCP server built with FastMCP 2 (on mcp 1.x), which speaks only the
handshake era (initialize, Mcp-Session-Id). Run: legacy_server.py PORT."""

import sys

from fastmcp import Context, FastMCP

port = int(sys.argv[1])

server = FastMCP("legacy-tools")


@server.tool()
def search(query: str) -> str:
    """Search the legacy index."""
    return f"legacy results for {query}"


@server.tool()
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@server.tool()
def delete_everything() -> str:
    """A tool an operator would rather hide."""
    return "deleted"


@server.tool()
async def refresh(ctx: Context) -> str:
    """Tell the client the tool list changed."""
    await ctx.send_tool_list_changed()
    return "refreshed"


@server.prompt()
def summarize(text: str) -> str:
    """A summary prompt."""
    return f"Summarize: {text}"


server.run(transport="http", host="127.0.0.1", port=port, path="/mcp", show_banner=False)
