"""Trace lines of a real contacts service call, over real RabbitMQ."""

import json
import logging
from pathlib import Path

import pytest
import yaml
from nameko.cli.main import setup_yaml_parser
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy
from nameko_tracer.utils import import_by_path

from sfsync.extensions.tracing import REDACTED
from sfsync.services.contacts import ContactsService
from sfsync.testing.fixtures import wait_for

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[2] / "config" / "contacts.yaml"
CONTEXT = {"authorization": "Bearer s3cret", "user": "ops@platform.example"}


def built(spec):
    options = dict(spec)
    return import_by_path(options.pop("()"))(**options)


@pytest.fixture
def trace_file(tmp_path):
    """The trace handler of config/contacts.yaml, writing to a file."""
    setup_yaml_parser()
    logging_config = yaml.safe_load(CONFIG.read_text())["LOGGING"]
    path = tmp_path / "trace.jsonl"
    handler = logging.FileHandler(path)
    handler.setFormatter(built(logging_config["formatters"]["trace"]))
    for spec in logging_config["filters"].values():
        handler.addFilter(built(spec))
    logger = logging.getLogger("nameko_tracer")
    logger.addHandler(handler)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    yield path
    logger.removeHandler(handler)
    logger.setLevel(previous_level)
    handler.close()


@pytest.fixture
def contacts(broker_uri, tmp_path, runner_factory, trace_file):
    config = {
        "AMQP_URI": broker_uri,
        "DB_URIS": {"contacts:Base": f"sqlite:///{tmp_path / 'contacts.sqlite3'}"},
    }
    runner = runner_factory(config, ContactsService)
    runner.start()
    with ServiceRpcProxy("contacts", config, context_data=CONTEXT) as proxy:
        yield proxy
    runner.stop()


def traces(path, method):
    """The request and response lines of ``method``; the response is written
    just after the reply is sent, so wait for it."""

    def both():
        found = [json.loads(line) for line in path.read_text().splitlines()]
        mine = [trace for trace in found if trace["entrypoint_name"] == method]
        return mine if len(mine) == 2 else None

    return wait_for(both, timeout=10, what=f"the {method} trace lines")


def test_a_call_writes_a_request_and_a_response_line(contacts, trace_file):
    created = contacts.create({"last_name": "Turner", "phone": "+44 113"})

    request, response = traces(trace_file, "create")
    assert (request["stage"], response["stage"]) == ("request", "response")
    assert response["service"] == "contacts"
    assert response["call_id"] == request["call_id"]
    assert response["call_id"] == response["call_id_stack"][-1]
    assert response["response_status"] == "success"
    assert response["response_time"] > 0
    assert json.loads(response["response"])["id"] == created["id"]


def test_context_data_and_listed_fields_are_redacted(contacts, trace_file):
    contacts.create({"last_name": "Turner", "phone": "+44 113"})

    request, response = traces(trace_file, "create")
    context = json.loads(request["context_data"])
    assert context["authorization"] == REDACTED
    assert context["user"] == "ops@platform.example"
    assert json.loads(request["call_args"])["data"]["phone"] == REDACTED
    assert json.loads(response["response"])["phone"] == REDACTED
    assert "s3cret" not in trace_file.read_text()


def test_a_failed_call_traces_its_error_with_the_password_redacted(
    contacts, trace_file
):
    with pytest.raises(RemoteError):
        contacts.create({"last_name": "Turner", "password": "hunter2"})

    request, response = traces(trace_file, "create")
    assert json.loads(request["call_args"])["data"]["password"] == REDACTED
    assert response["response_status"] == "error"
    assert response["exception_type"] == "InvalidContact"
    assert "password: unknown field" in response["exception_value"]
    assert response["exception_expected"] is True
    assert "hunter2" not in trace_file.read_text()
