import asyncio

import pytest

from sfsync.emulator.clock import Clock
from sfsync.emulator.org import DEFAULT_USERS, Org
from sfsync.emulator.schema import CONTACT, PUSH_TOPIC
from sfsync.emulator.store import Store
from sfsync.emulator.streaming import StreamingHub

SYNC_USER = DEFAULT_USERS[0].user_id
SALES_USER = DEFAULT_USERS[1].user_id
CHANNEL = "/topic/Contacts"


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def org(tmp_path, clock):
    store = Store(tmp_path / "org.sqlite3")
    yield Org(store, clock=clock)
    store.close()


@pytest.fixture
def hub(org, clock):
    return StreamingHub(org, connect_timeout=0.2, clock=clock)


def topic(org, query, **extra):
    body = {"Name": "Contacts", "Query": query, "ApiVersion": 59.0} | extra
    return org.create(PUSH_TOPIC, body, SYNC_USER)


def events(hub):
    return [stored.message["data"] for stored in hub.channels.get(CHANNEL, [])]


def test_create_update_delete_publish_matching_events(org, hub):
    topic(org, f"SELECT Id, Name FROM Contact WHERE LastModifiedById != '{SYNC_USER}'")

    own = org.create(CONTACT, {"LastName": "Mine"}, SYNC_USER)
    theirs = org.create(CONTACT, {"LastName": "Theirs"}, SALES_USER)
    org.update(CONTACT, theirs["Id"], {"FirstName": "Ann"}, SALES_USER)
    org.delete(CONTACT, theirs["Id"], SALES_USER)
    org.delete(CONTACT, own["Id"], SYNC_USER)

    data = events(hub)
    assert [d["event"]["type"] for d in data] == ["created", "updated", "deleted"]
    assert data[1]["sobject"] == {"Id": theirs["Id"], "Name": "Ann Theirs"}
    assert all(d["event"]["createdDate"].endswith("Z") for d in data)


def test_replay_ids_increase_with_gaps(org, hub):
    topic(org, "SELECT Id FROM Contact")

    for n in range(30):
        org.create(CONTACT, {"LastName": f"n{n}"}, SALES_USER)

    replay_ids = [d["event"]["replayId"] for d in events(hub)]
    steps = {b - a for a, b in zip(replay_ids, replay_ids[1:], strict=False)}
    assert steps <= {1, 2, 3} and len(steps) > 1


def test_referenced_fields_limit_update_notifications(org, hub):
    topic(org, "SELECT Id, Email FROM Contact WHERE LastName != null")
    contact = org.create(CONTACT, {"LastName": "A"}, SALES_USER)

    org.update(CONTACT, contact["Id"], {"Title": "CEO"}, SALES_USER)
    org.update(CONTACT, contact["Id"], {"Email": "a@b.example"}, SALES_USER)

    assert [d["event"]["type"] for d in events(hub)] == ["created", "updated"]


def test_notify_for_fields_all_ignores_updates_that_change_nothing(org, hub):
    topic(org, "SELECT Id FROM Contact", NotifyForFields="All")
    contact = org.create(CONTACT, {"LastName": "A", "Title": "x"}, SALES_USER)

    org.update(CONTACT, contact["Id"], {"Title": "x"}, SALES_USER)
    org.update(CONTACT, contact["Id"], {"Title": "y"}, SALES_USER)

    assert [d["event"]["type"] for d in events(hub)] == ["created", "updated"]


def test_operation_flags_suppress_events(org, hub):
    topic(org, "SELECT Id FROM Contact", NotifyForOperationCreate=False)

    contact = org.create(CONTACT, {"LastName": "A"}, SALES_USER)
    org.delete(CONTACT, contact["Id"], SALES_USER)

    assert [d["event"]["type"] for d in events(hub)] == ["deleted"]


def test_subscribe_replays_from_stored_id(org, hub):
    topic(org, "SELECT Id FROM Contact")
    for n in range(3):
        org.create(CONTACT, {"LastName": f"n{n}"}, SALES_USER)
    first = events(hub)[0]["event"]["replayId"]
    client = hub.handshake(SYNC_USER)

    error = hub.subscribe(client, CHANNEL, {CHANNEL: first})

    assert error is None
    assert [m["data"]["event"]["replayId"] for m in client.queue] == [
        d["event"]["replayId"] for d in events(hub)[1:]
    ]


def test_subscribe_rejects_expired_replay_id(org, hub, clock):
    topic(org, "SELECT Id FROM Contact")
    org.create(CONTACT, {"LastName": "old"}, SALES_USER)
    old = events(hub)[0]["event"]["replayId"]
    clock.advance(25 * 3600)
    org.create(CONTACT, {"LastName": "new"}, SALES_USER)
    client = hub.handshake(SYNC_USER)

    error = hub.subscribe(client, CHANNEL, {CHANNEL: old - 1})
    replay_all = hub.subscribe(client, CHANNEL, {CHANNEL: -2})

    assert error == (
        f"400::The replayId {old - 1} you provided was invalid. Please provide a "
        "valid ID, -2 to replay all events, or -1 to replay only new events."
    )
    assert replay_all is None
    assert [m["data"]["sobject"]["Id"] for m in client.queue] == [
        events(hub)[0]["sobject"]["Id"]
    ]


def test_subscribe_to_missing_topic(hub):
    client = hub.handshake(SYNC_USER)

    assert hub.subscribe(client, "/topic/Nope", None) == (
        "400::The channel you requested to subscribe to doesn't exist {/topic/Nope}"
    )


def test_events_survive_reopening_the_store(tmp_path, clock):
    store = Store(tmp_path / "org.sqlite3")
    org = Org(store, clock=clock)
    hub = StreamingHub(org, connect_timeout=0.2, clock=clock)
    topic(org, "SELECT Id FROM Contact")
    org.create(CONTACT, {"LastName": "kept"}, SALES_USER)
    before = events(hub)
    store.close()

    store = Store(tmp_path / "org.sqlite3")
    reopened = StreamingHub(Org(store, clock=clock), connect_timeout=0.2, clock=clock)

    assert events(reopened) == before
    store.close()


def test_held_connect_is_released_by_an_event(org, hub):
    topic(org, "SELECT Id FROM Contact")
    client = hub.handshake(SYNC_USER)
    hub.subscribe(client, CHANNEL, None)

    async def scenario():
        assert await hub.connect(client, lambda: True) == []  # first: at once
        waiting = asyncio.create_task(hub.connect(client, lambda: True))
        await asyncio.sleep(0.05)
        org.create(CONTACT, {"LastName": "wake"}, SALES_USER)
        return await asyncio.wait_for(waiting, 1)

    delivered = asyncio.run(scenario())

    assert [m["data"]["event"]["type"] for m in delivered] == ["created"]


def test_idle_clients_are_forgotten(hub):
    client = hub.handshake(SYNC_USER)
    client.last_seen -= 1.0

    hub.sweep()

    assert client.client_id not in hub.clients
