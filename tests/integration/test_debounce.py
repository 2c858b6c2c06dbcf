"""Debounce on a real Redis, with concurrent green threads."""

import eventlet
import pytest
import redis

from sfsync.extensions.debounce import LOCK_PREFIX, PENDING_KEY, Debouncer
from sfsync.extensions.lock import Locks

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


def test_many_keys_run_together_and_a_busy_key_is_left_to_its_runner(client):
    debouncer = Debouncer(client, lock_ttl=5)
    running = eventlet.event.Event()
    single_runs = []
    bulk_runs = []

    def single():
        single_runs.append(2)
        if len(single_runs) == 1:
            running.send()
            eventlet.sleep(0.2)

    first = eventlet.spawn(debouncer.run, "contact:2", "sync_one", (2,), single)
    running.wait()
    calls = {"contact:1": 1, "contact:2": 2, "contact:3": 3}
    debouncer.run_many("sync_one", calls, bulk_runs.append)
    assert first.wait() is True

    assert bulk_runs == [[1, 3]]
    assert single_runs == [2, 2]  # the busy key ran again, by its runner
    assert client.hlen(PENDING_KEY) == 0
    assert not client.keys(LOCK_PREFIX + "*")


def test_a_key_marked_during_a_bulk_run_runs_once_more(client):
    debouncer = Debouncer(client, lock_ttl=5)
    bulk_runs = []

    def bulk(ids):
        bulk_runs.append(ids)
        if len(bulk_runs) == 1:  # another change to record 2 arrives meanwhile
            assert debouncer.run("contact:2", "sync_one", (2,), lambda: None) is False

    debouncer.run_many("sync_one", {"contact:1": 1, "contact:2": 2}, bulk)

    assert bulk_runs == [[1, 2], [2]]
    assert client.hlen(PENDING_KEY) == 0


def test_a_bulk_key_left_pending_by_a_dead_runner_is_found_stale(client):
    debouncer = Debouncer(client, lock_ttl=0.2)
    client.set(LOCK_PREFIX + "contact:5", "someone else", px=200)

    debouncer.run_many("sync_one", {"contact:5": 5}, lambda ids: None)
    eventlet.sleep(0.3)  # the holder died: its lock lapses

    assert list(debouncer.stale()) == [("sync_one", [5])]


def test_hold_free_holds_the_free_names_and_skips_the_held_ones(redis_uri):
    client = redis.Redis.from_url(redis_uri)
    locks = Locks(client, "test:lock:", ttl=5, wait=1)
    with locks.hold("a"):
        with locks.hold_free(["a", "b", "c"]) as held:
            assert held == ["b", "c"]
            assert client.exists("test:lock:b", "test:lock:c") == 2
            with locks.hold_free(["b", "d"]) as inner:
                assert inner == ["d"]
        assert client.exists("test:lock:b", "test:lock:c", "test:lock:d") == 0
    assert not client.exists("test:lock:a")
    client.close()
