"""The examples in docs/extensions.md run, so they cannot rot."""

import importlib.util
import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_crud_example_lists_work_notes_newest_title_first():
    assert load("crud_notes").run() == ["Ship", "Call Ada"]


@pytest.fixture
def trace_lines():
    return [json.loads(line) for line in load("tracing_service").run()]


def test_tracing_example_writes_a_request_and_a_response_line(trace_lines):
    assert [line["stage"] for line in trace_lines] == ["request", "response"]
    assert trace_lines[1]["response_status"] == "success"


def test_tracing_example_redacts_secrets_and_listed_fields(trace_lines):
    request, response = trace_lines

    assert json.loads(request["call_args"])["form"] == {
        "password": "********",
        "pin": "********",
    }
    assert json.loads(request["context_data"])["authorization"] == "********"
    assert json.loads(response["response"])["session_token"] == "********"
