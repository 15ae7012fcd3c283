"""An agent that signs in through sluice's OAuth authorization server with the
official MCP Python SDK's OAuth client: protected-resource discovery, authorization
server metadata, dynamic client registration, authorization code with PKCE, and a
token refresh. The "browser" step (the sign-in form) is done with plain HTTP and the
consumer's API key.

oauth_agent.py URL GATEWAY_SLUG API_KEY; prints one JSON object.
"""

import asyncio
import html
import json
import re
import sys
import time
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

url, gateway, api_key = sys.argv[1], sys.argv[2], sys.argv[3]
headers = {"X-AG-Gateway-Slug": gateway}


class Memory(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


redirected = {}
report = {"sign_in_pages": 0}


async def redirect_handler(authorization_url):
    """The user's browser: open the sign-in page, submit the API key, follow nothing."""
    async with httpx2.AsyncClient(headers=headers) as browser:
        page = await browser.get(authorization_url)
        report["sign_in_status"] = page.status_code
        report["sign_in_pages"] += 1
        fields = {html.unescape(k): html.unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)}
        wrong = await browser.post(urlparse(authorization_url)._replace(query="").geturl(), data={**fields, "api_key": "ag_wrong"})
        report["wrong_key_status"] = wrong.status_code
        fields["api_key"] = api_key
        answer = await browser.post(urlparse(authorization_url)._replace(query="").geturl(), data=fields)
        report["authorize_status"] = answer.status_code
        query = parse_qs(urlparse(answer.headers["location"]).query)
        redirected.update({k: v[0] for k, v in query.items()})


async def callback_handler():
    return AuthorizationCodeResult(code=redirected["code"], state=redirected.get("state"), iss=redirected.get("iss"))


async def main():
    storage = Memory()
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="sluice test agent",
            redirect_uris=["http://127.0.0.1:9/callback"],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    http = httpx2.AsyncClient(headers=headers, auth=provider, timeout=30)
    async with Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client:
        tools = await client.list_tools()
        report["tools"] = sorted(t.name for t in tools.tools)
        first = storage.tokens
        report["first_access"] = first.access_token
        report["first_refresh"] = first.refresh_token
        # The access token runs out: the SDK refreshes it before the next request.
        provider.context.token_expiry_time = time.time() - 1
        result = await client.call_tool("echo", {"text": "after refresh"})
        report["after_refresh"] = [c.text for c in result.content]
        report["second_access"] = storage.tokens.access_token
        report["client_id"] = storage.client.client_id
    print(json.dumps(report), flush=True)


asyncio.run(main())
