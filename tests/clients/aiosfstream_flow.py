"""aiosfstream-ng against the emulator: OAuth login, REST by aiohttp, CDC and PushTopic.

Run as a script (the test suite's eventlet monkey-patching must not reach
asyncio): settings come from EMU_URL, EMU_USERNAME, EMU_PASSWORD and EMU_TAG,
the result is one JSON object on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import aiohttp
from aiosfstream_ng import Client, PasswordAuthenticator, ReplayOption

VERSION = "59.0"


class EmulatorAuthenticator(PasswordAuthenticator):
    """The package hard-codes login.salesforce.com; this points it elsewhere."""

    def __init__(self, token_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.emulator_token_url = token_url

    @property
    def _token_url(self) -> str:
        return self.emulator_token_url


class Rest:
    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session = session
        self.base = f"{base}/services/data/v{VERSION}"
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Sforce-Call-Options": "client=aiosfstream-flow",
        }

    async def call(
        self, method: str, path: str, body: Any = None, **headers: str
    ) -> tuple[int, Any]:
        url = path if path.startswith("/services") else self.base + path
        if url.startswith("/"):
            url = self.base.split("/services")[0] + url
        async with self.session.request(
            method, url, json=body, headers=self.headers | headers
        ) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None


async def flow() -> dict[str, Any]:
    url = os.environ["EMU_URL"]
    tag = os.environ.get("EMU_TAG", "x")
    username, password = os.environ["EMU_USERNAME"], os.environ["EMU_PASSWORD"]
    result: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url}/services/oauth2/token",
            data={"grant_type": "password", "username": username, "password": password},
        ) as response:
            token = (await response.json())["access_token"]  # fmt: skip
        rest = Rest(session, url, token)
        topic = f"Aio{tag}"[:25]
        await rest.call("POST", "/sobjects/PushTopic", {
            "Name": topic, "ApiVersion": 59.0, "NotifyForFields": "All",
            "Query": f"SELECT Id, LastName FROM Contact WHERE LastName = 'Aio-{tag}'",
        })  # fmt: skip

        auth = EmulatorAuthenticator(
            f"{url}/services/oauth2/token",
            consumer_key="emulator",
            consumer_secret="emulator",
            username=username,
            password=password,
        )
        async with Client(auth, replay=ReplayOption.ALL_EVENTS) as client:
            await client.subscribe("/data/ContactChangeEvent")
            await client.subscribe(f"/topic/{topic}")
            result["cometd_url"] = client.url

            status, created = await rest.call(
                "POST", "/sobjects/Contact", {"LastName": f"Aio-{tag}"}
            )
            record_id = created["id"]
            _, fetched = await rest.call("GET", f"/sobjects/Contact/{record_id}")
            patched, _ = await rest.call(
                "PATCH", f"/sobjects/Contact/{record_id}", {"Title": "aio"}
            )
            upserted = [
                (await rest.call("PATCH", f"/sobjects/Contact/Platform_Id__c/aio-{tag}",
                                 {"LastName": "Up"}))[0]
                for _ in range(2)
            ]  # fmt: skip
            for index in range(5):
                await rest.call(
                    "POST", "/sobjects/Contact", {"LastName": f"AioPage-{tag}-{index}"}
                )
            pages = 0
            seen = 0
            _, page = await rest.call(
                "GET",
                f"/query?q=SELECT+Id+FROM+Contact+WHERE+LastName+LIKE+'AioPage-{tag}-%25'",
                **{"Sforce-Query-Options": "batchSize=2"},
            )
            while True:
                pages += 1
                seen += len(page["records"])
                if page["done"]:
                    break
                _, page = await rest.call("GET", page["nextRecordsUrl"])
            deleted, _ = await rest.call("DELETE", f"/sobjects/Contact/{record_id}")
            result.update(
                created=status, fetched_name=fetched["Name"], patched=patched,
                upserted=upserted, query_total=page["totalSize"], query_seen=seen,
                query_pages=pages, deleted=deleted, record_id=record_id,
            )  # fmt: skip

            changes: list[str] = []
            topic_events: list[str] = []

            async def receive() -> None:
                async for message in client:
                    data = message["data"]
                    if message["channel"].startswith("/data/"):
                        header = data["payload"]["ChangeEventHeader"]
                        if record_id in header["recordIds"]:
                            changes.append(header["changeType"])
                            result["change_origin"] = header["changeOrigin"]
                    elif data["sobject"]["Id"] == record_id:
                        topic_events.append(data["event"]["type"])
                    if len(changes) >= 3 and len(topic_events) >= 3:
                        return

            await asyncio.wait_for(receive(), timeout=20)
            result["changes"] = changes
            result["topic_events"] = topic_events
    return result


def main() -> None:
    try:
        result = asyncio.run(flow())
    except Exception as exc:  # reported to the test, which shows stderr
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        raise
    print(json.dumps(result))


if __name__ == "__main__":
    main()
