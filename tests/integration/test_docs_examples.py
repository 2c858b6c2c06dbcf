"""The examples in docs/extensions.md that need RabbitMQ, Redis or the
local Salesforce run here, so they cannot rot."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from sfsync.testing.fixtures import wait_until_streaming

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(
        f"docs_example_{name}", EXAMPLES / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def run_example(runner_factory):
    def run(name, config):
        example = load(name)
        runner_factory(config, *example.SERVICES).start()
        return example

    return run


@pytest.fixture
def config(broker_uri, redis_uri):
    return {"AMQP_URI": broker_uri, "REDIS_URIS": {"sync": redis_uri}}


def test_source_tracking_example_drops_only_the_sync_own_echo(run_example, config):
    example = run_example("source_tracking", config)

    pushed_up, dropped = example.main(config)

    assert pushed_up == ["by-a-user"]
    assert dropped == ["by-salesforce"]


def test_tasks_example_retries_once_and_dead_letters_the_hopeless(run_example, config):
    example = run_example("tasks_retry", config)

    runs, letter = example.main(config)

    assert runs == ["ada@example.com", "ada@example.com", "nobody"]
    assert (letter.task, letter.body["args"], letter.tries) == ("send", ["nobody"], 1)
    assert letter.error_type == "ValueError"


def test_dead_letters_command_lists_the_tasks_example_letter(run_example, config):
    example = run_example("tasks_retry", config)
    example.main(config)

    listed = subprocess.run(
        [sys.executable, "-m", "sfsync.cli", "dead-letters", "list"]
        + ["--service", "mailer", "--amqp-uri", config["AMQP_URI"]],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert listed.returncode == 0, listed.stderr
    assert 'send["nobody"]  after 1 tries: ValueError: nobody is not an address' in (
        listed.stdout
    )
    assert "1 dead letters in mailer.dead-letters" in listed.stdout


def test_debounce_example_runs_once_more_with_the_last_state(run_example, config):
    example = run_example("debounce_burst", config)

    assert example.main(config) == [1, 5]


def test_record_lock_example_loses_no_concurrent_write(run_example, config):
    example = run_example("record_lock", config)

    assert example.main(config) == ["t0", "t1", "t2", "t3", "t4"]


def test_streaming_example_sees_a_person_change_once_per_channel(
    run_example, service_config, redis_uri, sales
):
    example = run_example("streaming_contacts", service_config)
    wait_until_streaming(redis_uri)

    contact_id, notified, changed, resume_after = example.main(service_config, sales)

    assert notified == [contact_id]
    assert changed == [("CREATE", [contact_id])]
    assert resume_after >= 1


def test_salesforce_client_example_reads_what_a_person_changed(
    run_example, service_config, sales
):
    example = run_example("salesforce_client", service_config)

    assert example.main(service_config, sales) == "Countess"
