"""Streaming entrypoints: PushTopic and Change Data Capture, own writes left out.

Run by tests/integration/test_docs_examples.py on the local Salesforce: the
test starts ``SERVICES``, waits for the subscription, calls ``main``.
"""

import redis

from sfsync.extensions.salesforce import client_from_config
from sfsync.extensions.streaming import handle_change_event, handle_sobject_notification
from sfsync.testing.fixtures import wait_for

NOTIFIED, CHANGED = [], []


class Watcher:
    name = "watcher"

    @handle_sobject_notification("Contact")  # declares PushTopic "Contact"
    def on_notification(self, sobject_type, record_type, notification):
        NOTIFIED.append(notification["sobject"]["Id"])

    @handle_change_event("Contact")  # /data/ContactChangeEvent
    def on_change(self, sobject_type, change_type, record_ids, payload):
        CHANGED.append((change_type, record_ids))


SERVICES = (Watcher,)


def main(config, sales):
    integration = client_from_config(config)  # the user the service logs in as
    integration.create("Contact", {"LastName": "Written by the service"})
    integration.close()
    contact_id = sales.create("Contact", {"LastName": "Written by a person"})
    wait_for(lambda: NOTIFIED and CHANGED, what="the person's change")
    store = redis.Redis.from_url(config["REDIS_URIS"]["sync"])
    resume_after = wait_for(lambda: store.get("sfsync:replay_id:/topic/Contact"))
    return contact_id, NOTIFIED, CHANGED, int(resume_after)
