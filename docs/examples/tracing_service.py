"""A traced service: one JSON line per call and per result, secrets redacted.

Run by tests/unit/test_docs_examples.py: ``run()`` traces one call of
``login`` by hand (no broker) and returns the two JSON lines it wrote.
"""

import io
import logging

from nameko.containers import ServiceContainer, WorkerContext
from nameko.rpc import Rpc, rpc
from nameko.testing.utils import get_extension
from nameko_tracer.formatters import ElasticsearchDocumentFormatter

from sfsync.extensions.tracing import Tracer


class AccountsService:
    name = "accounts"

    tracer = Tracer(redact=("pin",))  # besides password, token, secret, ...

    @rpc
    def login(self, user, form):
        return {"user": user, "session_token": "t0k3n"}


def run() -> list[str]:
    # In a service, config/*.yaml LOGGING does this wiring.
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(ElasticsearchDocumentFormatter())
    logger = logging.getLogger("nameko_tracer")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    container = ServiceContainer(AccountsService, {"AMQP_URI": "memory://"})
    tracer = get_extension(container, Tracer)
    tracer.setup()
    worker_ctx = WorkerContext(
        container,
        None,
        get_extension(container, Rpc, method_name="login"),
        args=("ada", {"password": "hunter2", "pin": "1234"}),
        data={"authorization": "Bearer abc"},
    )
    try:
        tracer.worker_setup(worker_ctx)
        tracer.worker_result(worker_ctx, result={"user": "ada", "session_token": "x"})
    finally:
        logger.removeHandler(handler)
    return output.getvalue().splitlines()
