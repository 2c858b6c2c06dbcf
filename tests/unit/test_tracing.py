"""Trace redaction and the truncation the service configs set up, no broker."""

import json
import logging
from pathlib import Path

import pytest
import yaml
from nameko.cli.main import setup_yaml_parser
from nameko.containers import ServiceContainer, WorkerContext
from nameko.rpc import Rpc, rpc
from nameko.testing.utils import get_extension
from nameko_tracer.utils import import_by_path

from sfsync.extensions.tracing import REDACTED, Tracer, redact

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"password": "hunter2"}, {"password": REDACTED}),
        ({"PassWord": "x", "user": "ada"}, {"PassWord": REDACTED, "user": "ada"}),
        ({"Authorization": "Bearer x"}, {"Authorization": REDACTED}),
        ({"api_key": "k", "apiKey": "k"}, {"api_key": REDACTED, "apiKey": REDACTED}),
        ({"security_token": "t"}, {"security_token": REDACTED}),
        ({"CONSUMER_SECRET": "s"}, {"CONSUMER_SECRET": REDACTED}),
        ({"data": {"form": {"passwd": "p"}}}, {"data": {"form": {"passwd": REDACTED}}}),
        ([{"token": "t"}, {"id": 1}], [{"token": REDACTED}, {"id": 1}]),
        ({"rows": ({"secret": 1},)}, {"rows": [{"secret": REDACTED}]}),
        ({"password": {"nested": "all of it"}}, {"password": REDACTED}),
        ({"email": "a@b.c", "id": 3}, {"email": "a@b.c", "id": 3}),
        ("password=hunter2", "password=hunter2"),
        (None, None),
    ],
)  # fmt: skip
def test_redact_replaces_values_under_secret_keys(value, expected):
    assert redact(value)[0] == expected


def test_redact_replaces_listed_fields_in_any_case():
    value = {"Phone": "+1 555", "birthdate": "1990-01-01", "city": "Oslo"}

    redacted, changed = redact(value, frozenset({"phone", "birthdate"}))

    assert redacted == {"Phone": REDACTED, "birthdate": REDACTED, "city": "Oslo"}
    assert changed is True


def test_redact_reports_when_nothing_was_replaced():
    assert redact({"id": 1, "name": "Ada"}) == ({"id": 1, "name": "Ada"}, False)


def test_redact_leaves_the_original_untouched():
    original = {"login": {"password": "hunter2"}}

    redact(original)

    assert original == {"login": {"password": "hunter2"}}


class Vault:
    name = "vault"

    tracer = Tracer(redact=("pin",))

    @rpc
    def login(self, user, form):
        return {"user": user, "token": "t0k3n"}


@pytest.fixture
def traces(caplog):
    # Built, never started: no broker is contacted.
    container = ServiceContainer(Vault, {"AMQP_URI": "memory://"})
    tracer = get_extension(container, Tracer)
    tracer.setup()
    entrypoint = get_extension(container, Rpc, method_name="login")
    data = {"call_id_stack": ["gateway.login.1"], "authorization": "Bearer abc"}
    form = {"password": "hunter2", "pin": "1234"}
    worker_ctx = WorkerContext(
        container, None, entrypoint, args=("ada", form), data=data
    )

    with caplog.at_level(logging.INFO, logger="nameko_tracer"):
        tracer.worker_setup(worker_ctx)
        tracer.worker_result(worker_ctx, result={"user": "ada", "token": "t0k3n"})

    return [record.nameko_trace for record in caplog.records], worker_ctx


def test_tracer_redacts_arguments_context_and_result(traces):
    (request, response), _ = traces

    assert request["call_args"] == {
        "user": "ada",
        "form": {"password": REDACTED, "pin": REDACTED},
    }
    assert request["call_args_redacted"] is True
    assert request["context_data"]["authorization"] == REDACTED
    assert response["response"] == {"user": "ada", "token": REDACTED}


def test_tracer_keeps_what_a_trace_is_for(traces):
    (request, response), worker_ctx = traces

    assert (request["stage"], response["stage"]) == ("request", "response")
    assert response["service"] == "vault"
    assert response["entrypoint_name"] == "login"
    assert response["call_id"] == worker_ctx.call_id
    assert response["call_id_stack"] == ["gateway.login.1", worker_ctx.call_id]
    assert response["response_status"] == "success"
    assert response["response_time"] >= 0


def test_tracer_does_not_change_the_call_itself(traces):
    _, worker_ctx = traces

    assert worker_ctx.args[1] == {"password": "hunter2", "pin": "1234"}
    assert worker_ctx.data["authorization"] == "Bearer abc"


def logging_config(service):
    setup_yaml_parser()
    with (CONFIG_DIR / f"{service}.yaml").open() as handle:
        return yaml.safe_load(handle)["LOGGING"]


def configured_filters(service):
    filters = []
    for spec in logging_config(service)["filters"].values():
        options = dict(spec)
        factory = import_by_path(options.pop("()"))
        filters.append(factory(**options))
    return filters


def trace_record(trace):
    record = logging.LogRecord("nameko_tracer", logging.INFO, "", 0, "", (), None)
    record.nameko_trace = trace
    return record


@pytest.mark.parametrize("service", ["contacts", "salesforce"])
def test_configured_filters_truncate_large_arguments_and_results(service):
    trace = {
        "entrypoint_name": "create_many",
        "call_args": {"rows": ["x" * 100] * 100},
        "response": ["y" * 100] * 100,
    }
    record = trace_record(trace)

    for log_filter in configured_filters(service):
        log_filter.filter(record)

    assert len(trace["call_args"]) == 2000
    assert trace["call_args_truncated"] is True
    assert len(trace["response"]) == 2000
    assert trace["response_truncated"] is True


def test_configured_filters_leave_small_traces_whole():
    trace = {"entrypoint_name": "get", "call_args": {"id": 1}, "response": {"a": 1}}
    record = trace_record(trace)

    for log_filter in configured_filters("contacts"):
        log_filter.filter(record)

    assert (trace["call_args"], trace["response"]) == ({"id": 1}, {"a": 1})
    assert not trace["call_args_truncated"]


@pytest.mark.parametrize("service", ["contacts", "salesforce"])
def test_trace_lines_go_to_their_own_handler_as_one_json_object(service):
    config = logging_config(service)
    formatter_spec = dict(config["formatters"]["trace"])
    formatter = import_by_path(formatter_spec.pop("()"))(**formatter_spec)
    record = trace_record({"entrypoint_name": "get", "call_args": {"id": 1}})

    line = formatter.format(record)

    assert "\n" not in line
    assert json.loads(json.loads(line)["call_args"]) == {"id": 1}
    assert config["loggers"]["nameko_tracer"]["handlers"] == ["trace"]
    assert config["loggers"]["nameko_tracer"]["propagate"] is False
