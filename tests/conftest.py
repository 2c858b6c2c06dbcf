"""Green everything before anything else imports sockets or threads."""

import os

import eventlet

eventlet.monkey_patch()

# Retry schedules are read when the sync service is imported: run them at a
# twentieth of their length, so a rate-limit retry takes seconds in a test.
os.environ.setdefault("SFSYNC_RETRY_SCALE", "0.05")
