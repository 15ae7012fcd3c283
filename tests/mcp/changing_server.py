"""An upstream MCP server built with the official MCP Python SDK (mcp 2.x) whose tool
list changes: calling `refresh` adds the tool `fresh` and tells clients of both eras,
handshake-era sessions by `notifications/tools/list_changed` and stateless-era ones
(2026-07-28) through their `subscriptions/listen` streams. Run: changing_server.py PORT."""

import sys

from mcp.server.mcpserver import Context, MCPServer

port = int(sys.argv[1])
server = MCPServer("changing-tools")


@server.tool()
def stable() -> str:
    """Always here."""
    return "stable"


def fresh() -> str:
    """Added by refresh."""
    return "fresh"


@server.tool()
async def refresh(ctx: Context) -> str:
    """Add the tool `fresh` and say the tool list changed."""
    server.add_tool(fresh)
    await ctx.notify_tools_changed()
    try:
        await ctx.request_context.session.send_tool_list_changed()
    except Exception:
        pass  # a stateless-era request has no session to notify
    return "refreshed"


server.run(transport="streamable-http", host="127.0.0.1", port=port)
