"""Green everything before anything else imports sockets or threads."""

import eventlet

eventlet.monkey_patch()
