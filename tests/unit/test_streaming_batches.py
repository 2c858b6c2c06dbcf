"""Batch mode of the streaming entrypoints, on an in-memory Redis."""

import sys
from types import SimpleNamespace

import pytest

from sfsync.extensions import streaming
from sfsync.extensions.streaming import (
    FAILED_KEY,
    ChangeEventHandler,
    ReplayTracker,
    SObjectNotificationHandler,
    StreamingClient,
)
from sfsync.salesforce.streaming import StreamingSession, _Rehandshake

TOPIC = "/topic/Contact"
CDC = "/data/ContactChangeEvent"
INTEGRATION_USER = "005000000000001AAA"


class FakeRedis:
    """The Redis calls the streaming client makes, in memory; it notes each
    round trip (a pipeline as ``pipeline:<commands>``)."""

    def __init__(self):
        self.values = {}
        self.lists = {}
        self.trips = []

    def pipeline(self, transaction=True):
        return FakePipeline(self)

    def _set(self, key, value, nx=False, ex=None):
        if nx and key in self.values:
            return None
        self.values[key] = value
        return True

    def set(self, key, value, nx=False, ex=None):
        self.trips.append("set")
        return self._set(key, value, nx, ex)

    def mget(self, keys):
        self.trips.append("mget")
        return [self.values.get(key) for key in keys]

    def eval(self, script, numkeys, key, value):
        assert script == streaming._STORE_IF_LATER
        self.trips.append("eval")
        if int(value) <= int(self.values.get(key, -1)):
            return 0
        self.values[key] = str(value)
        return 1

    def rpush(self, key, value):
        self.trips.append("rpush")
        self.lists.setdefault(key, []).append(value)

    def pipelines(self):
        return [trip for trip in self.trips if trip.startswith("pipeline")]


class FakePipeline:
    def __init__(self, redis):
        self.redis = redis
        self.commands = []

    def set(self, *args, **kwargs):
        self.commands.append((args, kwargs))

    def execute(self):
        self.redis.trips.append(f"pipeline:{len(self.commands)}")
        return [self.redis._set(*args, **kwargs) for args, kwargs in self.commands]


class FakeContainer:
    """Runs each worker at once with ``method``; keeps managed threads."""

    def __init__(self, method):
        self.method = method
        self.workers = []
        self.threads = []

    def spawn_worker(self, entrypoint, args, kwargs, handle_result=None):
        self.workers.append(args)
        result = exc_info = None
        try:
            result = self.method(*args)
        except Exception:
            exc_info = sys.exc_info()
        if handle_result is not None:
            handle_result(SimpleNamespace(args=args), result, exc_info)

    def spawn_managed_thread(self, fn, identifier=None):
        self.threads.append(fn)


def entrypoint(kind, batch=True, method=lambda *args: None):
    handler = kind("Contact", batch=batch)
    client = StreamingClient()
    client.redis = FakeRedis()
    client.client = SimpleNamespace(client_name="sfsync", user_id=INTEGRATION_USER)
    client.trackers[handler.channel] = ReplayTracker()
    handler.streaming = client
    handler.container = FakeContainer(method)
    return handler


def notification(replay_id, channel=TOPIC):
    event = {"type": "created", "replayId": replay_id}
    return {
        "channel": channel,
        "data": {"event": event, "sobject": {"Id": f"003{replay_id}"}},
    }


def change(replay_id, user="005000000000002AAA"):
    header = {
        "changeType": "CREATE",
        "recordIds": [f"003{replay_id}"],
        "commitUser": user,
    }
    data = {"event": {"replayId": replay_id}, "payload": {"ChangeEventHeader": header}}
    return {"channel": CDC, "data": data}


def claim_key(channel, replay_id):
    return f"{streaming.CLAIM_KEY_PREFIX}{channel}:{replay_id}"


def stored_replay_id(handler):
    return handler.streaming.redis.values.get(
        streaming.REPLAY_KEY_PREFIX + handler.channel
    )


def scripted_session(*replies):
    """A session whose connects answer ``replies`` in turn (raising those
    that are exceptions), then stop it; and the list of its handshakes."""
    session = StreamingSession(None, [TOPIC], replay_from=lambda channel: None)
    handshakes = []
    session.handshake = lambda: handshakes.append(len(handshakes) + 1)
    session.subscribe_all = lambda: None
    script = iter(replies)

    def connect():
        reply = next(script, None)
        if reply is None:
            session.stop()
            return []
        if isinstance(reply, Exception):
            raise reply
        return reply

    session.connect = connect
    return session, handshakes


def replay_ids(messages):
    return [message["data"]["event"]["replayId"] for message in messages]


def test_batches_are_the_connect_replies_that_have_events_across_a_rehandshake():
    forgotten = _Rehandshake("403::Unknown client")
    session, handshakes = scripted_session(
        [notification(1), notification(2)], [], forgotten, [notification(5)]
    )

    batches = [replay_ids(batch) for batch in session.batches()]

    assert batches == [[1, 2], [5]]
    assert handshakes == [1, 2]


def test_events_are_the_batches_one_by_one():
    session, _ = scripted_session([notification(1), notification(2)], [notification(5)])

    assert replay_ids(session.events()) == [1, 2, 5]


def test_a_batch_is_handed_over_grouped_by_channel_in_order():
    calls = []
    handlers = {
        channel: SimpleNamespace(
            declare=lambda client: None,
            handle_messages=lambda messages: calls.append(
                [(m["channel"], m["data"]["event"]["replayId"]) for m in messages]
            ),
        )
        for channel in (TOPIC, CDC)
    }
    batch = [
        notification(1),
        change(2),
        notification(3),
        notification(4, "/x"),
        change(6),
    ]
    session = SimpleNamespace(running=True, batches=lambda: iter([batch]))
    client = StreamingClient()
    client.client = object()

    client._run(session, handlers)

    assert calls == [[(TOPIC, 1), (TOPIC, 3)], [(CDC, 2), (CDC, 6)]]


@pytest.mark.parametrize(
    "kind, make, args",
    [
        (
            SObjectNotificationHandler,
            notification,
            lambda m: ("Contact", None, m["data"]),
        ),
        (
            ChangeEventHandler,
            change,
            lambda m: (
                "Contact",
                "CREATE",
                m["data"]["payload"]["ChangeEventHeader"]["recordIds"],
                m["data"]["payload"],
            ),
        ),
    ],
)
def test_without_batch_each_message_has_its_own_claim_and_worker(kind, make, args):
    handler = entrypoint(kind, batch=False)
    messages = [make(7), make(9)]

    handler.handle_messages(messages)

    assert handler.container.workers == [args(message) for message in messages]
    # claim, settle; claim, settle
    assert handler.streaming.redis.pipelines() == ["pipeline:1"] * 4
    assert stored_replay_id(handler) == "9"


def test_a_batch_of_450_is_claimed_once_and_run_in_lists_of_200():
    handler = entrypoint(SObjectNotificationHandler)
    messages = [notification(replay_id) for replay_id in range(1, 451)]

    handler.handle_messages(messages)

    workers = handler.container.workers
    assert [len(notifications) for _, _, notifications in workers] == [200, 200, 50]
    assert [n for *_, notifications in workers for n in notifications] == [
        m["data"] for m in messages
    ]
    assert workers[0][:2] == ("Contact", None)
    assert handler.streaming.redis.pipelines() == [
        "pipeline:450",  # the claims
        "pipeline:200",  # the settles, one pipeline a worker
        "pipeline:200",
        "pipeline:50",
    ]
    assert handler.streaming.redis.values[claim_key(TOPIC, 450)] == "done"
    assert stored_replay_id(handler) == "450"
    assert handler.container.threads == []


def test_change_events_in_batch_mode_drop_echoes_and_still_count_them_handled():
    handler = entrypoint(ChangeEventHandler)

    handler.handle_messages([change(1), change(2, user=INTEGRATION_USER), change(3)])

    [(sobject_type, changes)] = handler.container.workers
    assert sobject_type == "Contact"
    assert changes == [
        {
            "change_type": "CREATE",
            "record_ids": ["0031"],
            "payload": change(1)["data"]["payload"],
        },
        {
            "change_type": "CREATE",
            "record_ids": ["0033"],
            "payload": change(3)["data"]["payload"],
        },
    ]
    assert claim_key(CDC, 2) not in handler.streaming.redis.values
    assert stored_replay_id(handler) == "3"


def test_events_another_instance_claimed_are_watched_by_one_thread(monkeypatch):
    handler = entrypoint(SObjectNotificationHandler)
    redis = handler.streaming.redis
    for replay_id in (2, 3, 4):
        redis.values[claim_key(TOPIC, replay_id)] = "pending:other"
    redis.values[claim_key(TOPIC, 5)] = "done"

    handler.handle_messages([notification(replay_id) for replay_id in range(1, 6)])

    [(_, _, mine)] = handler.container.workers
    assert [notification["event"]["replayId"] for notification in mine] == [1]
    assert len(handler.container.threads) == 1
    assert stored_replay_id(handler) == "1"

    def one_poll_later(seconds):
        redis.values[claim_key(TOPIC, 2)] = "done"  # the other instance ran it
        del redis.values[claim_key(TOPIC, 3)]  # the other instance died
        del redis.values[claim_key(TOPIC, 4)]

    monkeypatch.setattr(streaming.time, "sleep", one_poll_later)
    redis.trips.clear()
    handler.container.threads[0]()

    taken_over = handler.container.workers[1][2]
    assert [n["event"]["replayId"] for n in taken_over] == [3, 4]
    assert len(handler.container.workers) == 2
    assert redis.trips.count("mget") == 2
    assert redis.pipelines()[0] == "pipeline:2"  # both claimed again at once
    assert stored_replay_id(handler) == "5"


def test_a_lapsed_claim_another_instance_takes_first_is_watched_on(monkeypatch):
    handler = entrypoint(SObjectNotificationHandler)
    redis = handler.streaming.redis
    redis.values[claim_key(TOPIC, 1)] = "pending:other"
    handler.handle_messages([notification(1)])

    def third_instance_claims_first(channel, replay_ids):
        redis.values[claim_key(TOPIC, 1)] = "done"  # and runs it at once
        return [False for _ in replay_ids]

    del redis.values[claim_key(TOPIC, 1)]
    monkeypatch.setattr(handler.streaming, "claim_all", third_instance_claims_first)
    monkeypatch.setattr(streaming.time, "sleep", lambda seconds: None)
    handler.container.threads[0]()

    assert handler.container.workers == []
    assert redis.trips.count("mget") == 2
    assert stored_replay_id(handler) == "1"


def run_retries(handler):
    """Run the retry threads the failed workers left, until none is left."""
    while handler.container.threads:
        handler.container.threads.pop(0)()


@pytest.fixture
def no_retry_pauses(monkeypatch):
    monkeypatch.setattr(streaming, "WORKER_RETRY_SECONDS", (0.0, 0.0, 0.0))


def test_a_failed_worker_runs_again_with_its_claims_held(no_retry_pauses):
    failures = ["broker away"]

    def flaky(*args):
        if failures:
            raise ConnectionError(failures.pop())

    handler = entrypoint(SObjectNotificationHandler, method=flaky)

    handler.handle_messages([notification(replay_id) for replay_id in (4, 5)])
    assert handler.streaming.redis.values[claim_key(TOPIC, 5)].startswith("pending:")
    assert stored_replay_id(handler) is None
    run_retries(handler)

    assert len(handler.container.workers) == 2
    assert FAILED_KEY not in handler.streaming.redis.lists
    assert handler.streaming.redis.values[claim_key(TOPIC, 5)] == "done"
    assert stored_replay_id(handler) == "5"


def test_a_failed_batch_worker_is_kept_with_its_replay_ids(no_retry_pauses):
    def fail(*args):
        raise ValueError("bad batch")

    handler = entrypoint(SObjectNotificationHandler, method=fail)

    handler.handle_messages([notification(replay_id) for replay_id in (4, 5, 6)])
    run_retries(handler)
    assert len(handler.container.workers) == 1 + len(streaming.WORKER_RETRY_SECONDS)

    [entry] = handler.streaming.redis.lists[FAILED_KEY]
    assert entry.startswith(f"{TOPIC} 4,5,6 ValueError('bad batch')")
    assert handler.streaming.redis.values[claim_key(TOPIC, 6)] == "done"
    assert stored_replay_id(handler) == "6"


CAUGHT_UP = {"event": {"type": "caught-up"}, "sobject": {"Id": "0030"}}
GAP = {"change_type": "GAP_CATCH_UP", "record_ids": ["0030"], "payload": {}}


def caught_up_workers(kind, batch):
    """The workers' arguments of a catch-up that finds 450 records."""
    handler = entrypoint(kind, batch=batch)
    records = [{"Id": f"003{n}"} for n in range(450)]
    client = SimpleNamespace(
        user_id=INTEGRATION_USER, query=lambda soql, include_deleted: iter(records)
    )
    handler.catch_up(client, "2024-05-01T12:00:00Z")
    return handler.container.workers


@pytest.mark.parametrize(
    "kind, first",
    [
        (SObjectNotificationHandler, ("Contact", None, CAUGHT_UP)),
        (ChangeEventHandler, ("Contact", "GAP_CATCH_UP", ["0030"], {})),
    ],
)
def test_catch_up_runs_a_worker_per_record(kind, first):
    workers = caught_up_workers(kind, batch=False)

    assert len(workers) == 450
    assert workers[0] == first


@pytest.mark.parametrize(
    "kind, leading, first",
    [
        (SObjectNotificationHandler, ("Contact", None), CAUGHT_UP),
        (ChangeEventHandler, ("Contact",), GAP),
    ],
)
def test_catch_up_in_batch_mode_runs_a_worker_per_200_records(kind, leading, first):
    workers = caught_up_workers(kind, batch=True)

    assert [args[:-1] for args in workers] == [leading] * 3
    assert [len(args[-1]) for args in workers] == [200, 200, 50]
    assert workers[0][-1][0] == first
