"""Debounce on a real Redis, with concurrent green threads."""

import eventlet
import pytest
import redis

from sfsync.extensions.debounce import LOCK_PREFIX, PENDING_KEY, Debouncer

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_uri):
    client = redis.Redis.from_url(redis_uri)
    yield client
    client.close()


def test_calls_during_a_run_cause_exactly_one_more_run_that_sees_the_end(client):
    debouncer = Debouncer(client, lock_ttl=5)
    state = {"value": 0}
    seen = []
    running = eventlet.event.Event()

    def sync():
        seen.append(state["value"])
        if len(seen) == 1:
            running.send()
            eventlet.sleep(0.2)

    first = eventlet.spawn(debouncer.run, "contact:1", "sync", (1,), sync)
    running.wait()
    for value in range(1, 6):
        state["value"] = value
        assert debouncer.run("contact:1", "sync", (1,), sync) is False
    assert first.wait() is True

    assert seen == [0, 5]
    assert not client.hexists(PENDING_KEY, "contact:1")


def test_runs_for_one_key_never_overlap(client):
    debouncer = Debouncer(client, lock_ttl=5)
    active = []
    overlaps = []

    def sync():
        active.append(1)
        if len(active) > 1:
            overlaps.append(len(active))
        eventlet.sleep(0.01)
        active.pop()

    pool = eventlet.GreenPool(20)
    for _ in range(50):
        pool.spawn(debouncer.run, "contact:2", "sync", (2,), sync)
        eventlet.sleep(0.002)
    pool.waitall()

    assert overlaps == []


def test_different_keys_run_side_by_side(client):
    debouncer = Debouncer(client, lock_ttl=5)
    runs = []

    def sync(key):
        runs.append(key)

    for key in ("a", "b", "c"):
        debouncer.run(key, "sync", (key,), lambda key=key: sync(key))

    assert runs == ["a", "b", "c"]


def test_the_lock_outlives_a_run_longer_than_its_lifetime(client):
    debouncer = Debouncer(client, lock_ttl=0.3)
    outcomes = []

    def slow():
        eventlet.sleep(1.0)

    runner = eventlet.spawn(debouncer.run, "contact:3", "sync", (3,), slow)
    eventlet.sleep(0.6)
    outcomes.append(debouncer.run("contact:3", "sync", (3,), lambda: None))
    runner.wait()

    assert outcomes == [False]


def test_a_pending_call_whose_runner_died_is_listed_as_stale(client):
    debouncer = Debouncer(client, lock_ttl=5)
    client.set(LOCK_PREFIX + "contact:4", "a dead worker's token", px=200)
    debouncer.run("contact:4", "sync_contact_up", (4,), lambda: None)

    assert list(debouncer.stale()) == []
    eventlet.sleep(0.3)
    assert list(debouncer.stale()) == [("sync_contact_up", [4])]
