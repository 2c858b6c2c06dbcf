import threading
import time

import pytest

from sfsync.testing.emulator import start_emulator

pytestmark = pytest.mark.integration

V = "/services/data/v59.0"
CONNECT_TIMEOUT = 3.0


def login(emulator, session, key):
    user = emulator.users[key]
    return session.post(
        f"{emulator.https_url}/services/oauth2/token",
        data={"grant_type": "password", "username": user["username"],
              "password": user["password"]},
        timeout=10,
    ).json()["access_token"]  # fmt: skip


class Org:
    """REST helper: creates topics and contacts as one user."""

    def __init__(self, emulator, key="sales"):
        self.session = emulator.session()
        self.base = emulator.https_url
        self.token = login(emulator, self.session, key)
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def post(self, sobject, body):
        response = self.session.post(
            f"{self.base}{V}/sobjects/{sobject}", json=body, timeout=10
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def topic(self, name, query, **extra):
        body = {"Name": name, "Query": query, "ApiVersion": 59.0} | extra
        return self.post("PushTopic", body)

    def patch(self, contact_id, body):
        url = f"{self.base}{V}/sobjects/Contact/{contact_id}"
        assert self.session.patch(url, json=body, timeout=10).status_code == 204

    def delete(self, contact_id):
        url = f"{self.base}{V}/sobjects/Contact/{contact_id}"
        assert self.session.delete(url, timeout=10).status_code == 204


class Bayeux:
    """A small long-polling CometD client on requests, every call bounded."""

    def __init__(self, emulator, token, path="/cometd/59.0"):
        self.session = emulator.session()
        self.url = emulator.https_url + path
        self.headers = {"Authorization": f"OAuth {token}"} if token else {}
        self.client_id = None
        self.next_id = 0

    def send(self, *messages):
        batch = []
        for message in messages:
            self.next_id += 1
            message = {"id": str(self.next_id)} | message
            if self.client_id and message["channel"] != "/meta/handshake":
                message.setdefault("clientId", self.client_id)
            batch.append(message)
        response = self.session.post(
            self.url, json=batch, headers=self.headers, timeout=CONNECT_TIMEOUT + 10
        )
        assert response.status_code == 200
        return response.json()

    def handshake(self):
        [reply] = self.send(
            {"channel": "/meta/handshake", "version": "1.0",
             "supportedConnectionTypes": ["long-polling"]}
        )  # fmt: skip
        assert reply["successful"], reply
        self.client_id = reply["clientId"]
        return reply

    def subscribe(self, channel, replay=None):
        message = {"channel": "/meta/subscribe", "subscription": channel}
        if replay is not None:
            message["ext"] = {"replay": {channel: replay}}
        [reply] = self.send(message)
        return reply

    def connect(self):
        replies = self.send(
            {"channel": "/meta/connect", "connectionType": "long-polling"}
        )
        assert replies[-1]["channel"] == "/meta/connect"
        return replies[:-1], replies[-1]

    def events(self, count, limit=4):
        """Connect until `count` events arrived, at most `limit` polls."""
        received = []
        for _ in range(limit):
            events, reply = self.connect()
            assert reply["successful"], reply
            received += events
            if len(received) >= count:
                break
        return received


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    process = start_emulator(
        tmp_path_factory.mktemp("emulator-streaming"), connect_timeout=CONNECT_TIMEOUT
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def org(emulator):
    return Org(emulator)


@pytest.fixture
def bayeux(emulator, org):
    client = Bayeux(emulator, Org(emulator, "integration").token)
    client.handshake()
    client.connect()  # the first connect after a handshake returns at once
    return client


def test_handshake_and_first_connect(emulator, org):
    client = Bayeux(emulator, org.token)

    handshake = client.handshake()
    started = time.monotonic()
    events, connect = client.connect()

    assert handshake["supportedConnectionTypes"] == ["long-polling"]
    assert handshake["ext"]["replay"] is True
    assert handshake["id"] == "1"
    assert time.monotonic() - started < 1.0
    assert connect["advice"] == {
        "reconnect": "retry", "interval": 0, "timeout": int(CONNECT_TIMEOUT * 1000)
    }  # fmt: skip
    assert events == []


def test_ids_are_echoed_as_sent(emulator, org):
    client = Bayeux(emulator, org.token)

    replies = client.session.post(
        client.url,
        json=[{"channel": "/meta/handshake", "id": 7, "version": "1.0"}],
        headers=client.headers,
        timeout=10,
    ).json()

    assert replies[0]["id"] == 7


def test_new_events_release_a_held_connect(emulator, org, bayeux):
    org.topic("Live", "SELECT Id, Name, Email FROM Contact WHERE LeadSource = 'web'")
    assert bayeux.subscribe("/topic/Live", -1)["successful"]
    result = {}

    def poll():
        started = time.monotonic()
        result["events"], result["reply"] = bayeux.connect()
        result["elapsed"] = time.monotonic() - started

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.3)
    contact_id = org.post("Contact", {"LastName": "Web", "LeadSource": "web"})
    org.post("Contact", {"LastName": "Phone", "LeadSource": "phone"})
    poller.join(timeout=CONNECT_TIMEOUT + 10)

    assert not poller.is_alive()
    assert result["elapsed"] < CONNECT_TIMEOUT - 1
    [event] = result["events"]
    assert event["channel"] == "/topic/Live"
    assert event["data"]["event"]["type"] == "created"
    assert event["data"]["event"]["createdDate"].endswith("Z")
    assert isinstance(event["data"]["event"]["replayId"], int)
    assert event["data"]["sobject"] == {"Id": contact_id, "Name": "Web", "Email": None}
    assert "clientId" not in event


def test_update_and_delete_notifications(org, bayeux):
    org.topic("Changes", "SELECT Id, Email FROM Contact")
    contact_id = org.post("Contact", {"LastName": "Change"})
    bayeux.subscribe("/topic/Changes", -1)

    org.patch(contact_id, {"Title": "not referenced"})
    org.patch(contact_id, {"Email": "c@x.example"})
    org.delete(contact_id)
    events = bayeux.events(2)

    assert [e["data"]["event"]["type"] for e in events] == ["updated", "deleted"]
    assert events[0]["data"]["sobject"] == {"Id": contact_id, "Email": "c@x.example"}


def test_replay_all_and_from_stored_id(emulator, org):
    org.topic("Replay", "SELECT Id FROM Contact WHERE LeadSource = 'replay'")
    ids = [org.post("Contact", {"LastName": f"R{n}", "LeadSource": "replay"})
           for n in range(3)]  # fmt: skip
    everything = Bayeux(emulator, org.token)
    everything.handshake()
    later = Bayeux(emulator, org.token)
    later.handshake()

    assert everything.subscribe("/topic/Replay", -2)["successful"]
    replayed = everything.events(3)
    first_replay_id = replayed[0]["data"]["event"]["replayId"]
    assert later.subscribe("/topic/Replay", first_replay_id)["successful"]
    rest = later.events(2)

    assert [e["data"]["sobject"]["Id"] for e in replayed] == ids
    replay_ids = [e["data"]["event"]["replayId"] for e in replayed]
    assert replay_ids == sorted(set(replay_ids))
    assert [e["data"]["sobject"]["Id"] for e in rest] == ids[1:]


def test_subscribe_and_connect_in_one_batch(emulator, org):
    org.topic("Batch", "SELECT Id FROM Contact WHERE LeadSource = 'batch'")
    contact_id = org.post("Contact", {"LastName": "B", "LeadSource": "batch"})
    client = Bayeux(emulator, org.token)
    client.handshake()

    replies = client.send(
        {"channel": "/meta/connect", "connectionType": "long-polling"},
        {"channel": "/meta/subscribe", "subscription": "/topic/Batch",
         "ext": {"replay": {"/topic/Batch": -2}}},
    )  # fmt: skip

    assert [r["channel"] for r in replies] == [
        "/meta/subscribe", "/topic/Batch", "/meta/connect"
    ]  # fmt: skip
    assert replies[1]["data"]["sobject"]["Id"] == contact_id


def test_subscribe_to_missing_topic(bayeux):
    reply = bayeux.subscribe("/topic/DoesNotExist")

    assert reply["successful"] is False
    assert reply["subscription"] == "/topic/DoesNotExist"
    assert reply["error"] == (
        "400::The channel you requested to subscribe to doesn't exist "
        "{/topic/DoesNotExist}"
    )


def test_unknown_client_must_handshake(emulator, org):
    client = Bayeux(emulator, org.token)
    client.client_id = "nosuchclient"

    [reply] = client.send(
        {"channel": "/meta/connect", "connectionType": "long-polling"}
    )

    assert reply["successful"] is False
    assert reply["error"] == "403::Unknown client"
    assert reply["advice"]["reconnect"] == "handshake"


def test_handshake_without_valid_token_is_denied(emulator):
    client = Bayeux(emulator, "00Dbogus!AQnope")

    [reply] = client.send({"channel": "/meta/handshake", "version": "1.0"})

    assert reply["successful"] is False
    assert reply["error"] == "403::Handshake denied"
    assert reply["ext"]["sfdc"]["failureReason"] == "401::Authentication invalid"


def test_message_type_suffix_in_url_is_accepted(emulator, org):
    client = Bayeux(emulator, org.token, path="/cometd/59.0/handshake")

    assert client.handshake()["successful"]


def test_records_and_events_survive_restart_and_replay_expires(tmp_path):
    emulator = start_emulator(tmp_path / "emulator", connect_timeout=CONNECT_TIMEOUT)
    try:
        org = Org(emulator)
        org.topic("Durable", "SELECT Id, Name FROM Contact")
        contact_id = org.post("Contact", {"LastName": "Durable"})
        urls = (emulator.https_url, emulator.http_url)

        emulator.restart()
        org = Org(emulator)  # sessions persist, but log in again anyway
        client = Bayeux(emulator, org.token)
        client.handshake()
        assert client.subscribe("/topic/Durable", -2)["successful"]
        [event] = client.events(1)
        record = org.session.get(
            f"{emulator.https_url}{V}/sobjects/Contact/{contact_id}", timeout=10
        ).json()
        old_replay_id = event["data"]["event"]["replayId"]
        emulator.session().post(
            emulator.http_url + "/_emulator/clock",
            json={"advance_seconds": 25 * 3600},
            timeout=10,
        )
        org.post("Contact", {"LastName": "Fresh"})
        expired = Bayeux(emulator, org.token)
        expired.handshake()
        refused = expired.subscribe("/topic/Durable", old_replay_id - 1)
    finally:
        emulator.stop()

    assert (emulator.https_url, emulator.http_url) == urls
    assert record["Name"] == "Durable"
    assert event["data"]["sobject"] == {"Id": contact_id, "Name": "Durable"}
    assert refused["successful"] is False
    assert refused["error"].startswith(f"400::The replayId {old_replay_id - 1} you")
