"""Batch mode of the streaming entrypoints: a bulk load on the emulator."""

import json
import time

import pytest
import redis

from sfsync.extensions import streaming
from sfsync.extensions.streaming import (
    BATCH_LIMIT,
    handle_change_event,
    handle_sobject_notification,
)
from sfsync.testing.fixtures import TEST_REDIS_URI, wait_for, wait_until_streaming

pytestmark = pytest.mark.integration

RECORDS = 450
STARTED_KEY = "test:batches:started"  # a JSON list a worker, as it starts
FINISHED_KEY = "test:batches:finished"  # the same, as it ends
HOLD_KEY = "test:batches:hold"  # while set, workers wait before they end

store = redis.Redis.from_url(TEST_REDIS_URI, decode_responses=True)


def record(items):
    store.rpush(STARTED_KEY, json.dumps(items))
    while store.exists(HOLD_KEY):
        time.sleep(0.05)
    store.rpush(FINISHED_KEY, json.dumps(items))


class BatchNotifications:
    name = "batch_notifications"

    @handle_sobject_notification("Contact", batch=True)
    def on_contacts(self, sobject_type, record_type, notifications):
        record([f"{sobject_type} {n['sobject']['Id']}" for n in notifications])


class BatchChanges:
    name = "batch_changes"

    @handle_change_event("Contact", batch=True)
    def on_changes(self, sobject_type, changes):
        record([f"{c['change_type']} {i}" for c in changes for i in c["record_ids"]])


def create_contacts(client, count=RECORDS):
    """Create ``count`` Contacts with sObject Collections, 200 a call."""
    ids = []
    for start in range(0, count, 200):
        rows = [
            {"Platform_Id__c": f"bulk-{n}", "LastName": f"Bulk {n}"}
            for n in range(start, min(start + 200, count))
        ]
        ids += [
            result.id
            for result in client.upsert_many("Contact", "Platform_Id__c", rows)
        ]
    return ids


def workers(key=FINISHED_KEY, kind=""):
    """Each worker's list of ``"<kind> <id>"``, only ``kind``'s if given."""
    lists = [json.loads(value) for value in store.lrange(key, 0, -1)]
    lists = [[item for item in items if item.startswith(kind)] for items in lists]
    return [items for items in lists if items]


def flat(lists):
    return sorted(item.split()[-1] for items in lists for item in items)


def test_a_bulk_load_reaches_few_workers_each_notification_once(
    service_config, redis_uri, container_factory, sales
):
    container_factory(BatchNotifications, service_config).start()
    wait_until_streaming(redis_uri)

    ids = create_contacts(sales)
    wait_for(lambda: len(flat(workers())) >= RECORDS, timeout=30, what="every id")
    time.sleep(1.0)  # room for a second delivery, if any

    lists = workers()
    assert flat(lists) == sorted(ids)
    assert max(len(items) for items in lists) <= BATCH_LIMIT
    assert len(lists) < RECORDS / 10
    assert all(item.startswith("Contact ") for items in lists for item in items)


def test_a_backlog_is_split_into_lists_of_200(
    service_config, redis_uri, container_factory, sales
):
    ids = create_contacts(sales)

    container_factory(BatchChanges, service_config).start()
    wait_until_streaming(redis_uri)
    wait_for(lambda: len(flat(workers())) >= RECORDS, timeout=30, what="every id")

    lists = workers()
    assert sorted(len(items) for items in lists) == [50, 200, 200]
    assert flat(lists) == sorted(ids)


def test_change_events_come_in_batches_without_the_sync_own(
    service_config, redis_uri, container_factory, sales, emulator
):
    container_factory(BatchChanges, service_config).start()
    wait_until_streaming(redis_uri)
    own = emulator.client("integration", "sfsync-test")

    own_id = own.create("Contact", {"LastName": "Own"})
    ids = create_contacts(sales)
    wait_for(lambda: len(flat(workers())) >= RECORDS, timeout=30, what="every id")
    time.sleep(1.0)
    own.close()

    lists = workers()
    assert flat(lists) == sorted(ids)
    assert own_id not in flat(lists)
    assert {item.split()[0] for items in lists for item in items} == {"CREATE"}
    assert max(len(items) for items in lists) <= BATCH_LIMIT
    assert len(lists) < RECORDS / 10
    stored = wait_for(
        lambda: store.get("sfsync:replay_id:/data/ContactChangeEvent"),
        what="the replay id",
    )
    claimed = store.keys("sfsync:claimed:/data/ContactChangeEvent:*")
    assert int(stored) == max(int(key.rsplit(":", 1)[1]) for key in claimed)


def test_two_instances_run_each_notification_once(
    service_config, redis_uri, container_factory, sales
):
    for _ in range(2):
        container_factory(BatchNotifications, service_config).start()
    wait_until_streaming(redis_uri, instances=2)

    ids = create_contacts(sales)
    wait_for(lambda: len(flat(workers())) >= RECORDS, timeout=30, what="every id")
    time.sleep(1.5)  # room for a second run, if any instance made one

    lists = workers()
    assert flat(lists) == sorted(ids)
    assert max(len(items) for items in lists) <= BATCH_LIMIT
    claims = store.keys("sfsync:claimed:/topic/Contact:*")
    assert len(claims) == RECORDS
    assert set(store.mget(claims)) == {"done"}


def test_a_dead_claimer_batch_is_taken_over_once(
    service_config, redis_uri, container_factory, sales, monkeypatch
):
    monkeypatch.setattr(streaming, "CLAIM_PENDING_SECONDS", 1)
    store.set(HOLD_KEY, "1")
    ids = create_contacts(sales)
    first = container_factory(BatchChanges, service_config)
    first.start()
    wait_for(
        lambda: len(flat(workers(STARTED_KEY, "CREATE"))) == RECORDS,
        what="the first instance's workers",
    )

    container_factory(BatchChanges, service_config).start()
    wait_until_streaming(redis_uri, instances=2)
    time.sleep(3.0)  # three pending lifetimes: the first one keeps its claims
    assert len(flat(workers(STARTED_KEY, "CREATE"))) == RECORDS
    first.kill()
    store.delete(HOLD_KEY)
    wait_for(
        lambda: len(flat(workers(kind="CREATE"))) >= RECORDS,
        timeout=30,
        what="the takeover",
    )
    time.sleep(1.0)

    taken_over = workers(kind="CREATE")
    assert flat(taken_over) == sorted(ids)
    assert max(len(items) for items in taken_over) <= BATCH_LIMIT
    assert len(flat(workers(STARTED_KEY, "CREATE"))) == 2 * RECORDS
    # The second instance found no stored replay id behind a listened-to
    # channel, so it also caught up by query, in lists of up to 200.
    caught_up = workers(kind="GAP_CATCH_UP")
    assert flat(caught_up) == sorted(ids)
    assert max(len(items) for items in caught_up) <= BATCH_LIMIT
