"""The MCP authorization flow from the official MCP Python SDK, headless.

Run by `tests/api/real_clients.rs`: python mcp_oauth_flow.py <mcp-url> <email> <password>

The SDK's OAuthClientProvider gets a 401 from /mcp, discovers the protected
resource and authorization server metadata, registers a client (RFC 7591),
builds the authorization URL with PKCE S256 and `resource`; the "browser" here
is an HTTP client that signs in on the consent page and approves. The SDK then
exchanges the code, calls tools, and - after we mark its token expired - refreshes
before the next session. The last stdout line is a JSON summary.
"""

import asyncio
import json
import sys
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT = "http://127.0.0.1:53682/callback"


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None
        self.history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class FormParser(HTMLParser):
    """Collects the consent form's action and hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action")
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""


class Browser:
    """Plays the user: opens the authorization URL, signs in, approves."""

    def __init__(self, email: str, password: str) -> None:
        self.email = email
        self.password = password
        self.url: str | None = None

    async def redirect_handler(self, url: str) -> None:
        self.url = url

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self.url, "the SDK never opened an authorization URL"
        query = parse_qs(urlparse(self.url).query)
        assert query["code_challenge_method"] == ["S256"], query
        assert "resource" in query, "the SDK did not send an RFC 8707 resource"
        async with httpx2.AsyncClient(follow_redirects=False) as http:
            page = await http.get(self.url)
            assert page.status_code == 200, page.text
            form = FormParser()
            form.feed(page.text)
            assert form.action and "csrf_token" in form.fields, page.text
            data = dict(form.fields)
            data.update(email=self.email, password=self.password, decision="approve")
            base = f"{urlparse(self.url).scheme}://{urlparse(self.url).netloc}"
            resp = await http.post(base + form.action, data=data)
            assert resp.status_code == 303, (resp.status_code, resp.text)
            location = resp.headers["location"]
        assert location.startswith(REDIRECT), location
        params = parse_qs(urlparse(location).query)
        return AuthorizationCodeResult(
            code=params["code"][0],
            state=params.get("state", [None])[0],
            iss=params.get("iss", [None])[0],
        )


async def session_run(url: str, provider: OAuthClientProvider, action):
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await action(session)


async def main() -> None:
    url, email, password = sys.argv[1], sys.argv[2], sys.argv[3]
    storage = MemoryStorage()
    browser = Browser(email, password)
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="Python SDK test client",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
            scope="mcp",
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )

    async def first(session: ClientSession):
        tools = await session.list_tools()
        names = [t.name for t in tools.tools]
        assert "todo_create" in names, names
        result = await session.call_tool("todo_create", {"title": "from the python sdk"})
        assert not result.is_error, result
        return names

    names = await session_run(url, provider, first)
    assert storage.client is not None and storage.tokens is not None
    first_tokens = storage.tokens

    # Pretend the access token expired: the SDK must refresh before the next request.
    provider.context.token_expiry_time = time.time() - 10

    async def second(session: ClientSession):
        result = await session.call_tool("todo_list", {})
        assert not result.is_error, result
        return json.dumps(result.structured_content)

    listed = await session_run(url, provider, second)
    assert "from the python sdk" in listed, listed
    refreshed = storage.tokens
    assert refreshed is not None
    assert refreshed.access_token != first_tokens.access_token, "no refresh happened"
    assert refreshed.refresh_token != first_tokens.refresh_token, "the refresh token did not rotate"

    print(
        json.dumps(
            {
                "clientId": storage.client.client_id,
                "tools": len(names),
                "accessToken": refreshed.access_token,
                "refreshToken": refreshed.refresh_token,
                "rotatedRefreshToken": first_tokens.refresh_token,
                "tokensIssued": len(storage.history),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
