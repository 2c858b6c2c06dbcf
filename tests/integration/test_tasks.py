"""Tasks over AMQP: scheduling, delayed retries in RabbitMQ, dead letters."""

import subprocess
import sys
import time

import pytest
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcProxy
from nameko_amqp_retry import entrypoint_retry

from sfsync.deadletters import list_dead_letters, replay
from sfsync.extensions.source import SourceTracker
from sfsync.extensions.tasks import TaskScheduler, task
from sfsync.testing.fixtures import wait_for

pytestmark = pytest.mark.integration

RUNS: list[tuple] = []
FAILURES_LEFT: dict[str, int] = {}


class Flaky(Exception):
    pass


class Broken(Exception):
    pass


class WorkService:
    name = "work"

    tasks = TaskScheduler()
    source = SourceTracker()

    @rpc
    def start(self, key, flagged=False):
        if flagged:
            with self.source.salesforce_change():
                self.tasks.schedule("job", key)
        else:
            self.tasks.schedule(self.job, key)

    @task
    @entrypoint_retry(retry_for=Flaky, limit=2, schedule=(300,), random_sigma=0)
    def job(self, key):
        RUNS.append((key, time.monotonic(), self.source.from_salesforce))
        if key.startswith("broken"):
            raise Broken(f"{key} cannot work")
        if FAILURES_LEFT.get(key, 0) > 0:
            FAILURES_LEFT[key] -= 1
            raise Flaky(f"{key} not yet")


@pytest.fixture(autouse=True)
def clean_state():
    RUNS.clear()
    FAILURES_LEFT.clear()


@pytest.fixture
def config(broker_uri):
    return {"AMQP_URI": broker_uri}


@pytest.fixture
def work(config, runner_factory):
    runner = runner_factory(config, WorkService)
    runner.start()
    with ServiceRpcProxy("work", config) as proxy:
        yield proxy


def runs_of(key):
    return [run for run in RUNS if run[0] == key]


def test_a_scheduled_task_runs_with_its_arguments_and_context(work):
    work.start("plain")
    work.start("flagged", flagged=True)

    wait_for(lambda: len(RUNS) == 2, what="both tasks")

    assert {(key, flag) for key, _, flag in RUNS} == {
        ("plain", False),
        ("flagged", True),
    }


def test_a_retried_task_waits_its_schedule_then_succeeds(work, config):
    FAILURES_LEFT["flaky"] = 1

    work.start("flaky")

    wait_for(lambda: len(runs_of("flaky")) == 2, what="the retry")
    first, second = runs_of("flaky")
    assert second[1] - first[1] >= 0.3
    assert list_dead_letters(config["AMQP_URI"], "work") == []


def test_a_task_out_of_retries_is_dead_lettered_with_its_history(work, config):
    FAILURES_LEFT["hopeless"] = 99

    work.start("hopeless")

    letters = wait_for(
        lambda: list_dead_letters(config["AMQP_URI"], "work"), what="a dead letter"
    )
    assert len(runs_of("hopeless")) == 3
    [letter] = letters
    assert letter.task == "job"
    assert letter.body == {"args": ["hopeless"], "kwargs": {}}
    assert letter.tries == 3
    assert letter.error_type == "Flaky"
    assert "nameko.call_id_stack" in letter.headers


def test_an_error_no_retry_covers_is_dead_lettered_at_once(work, config):
    work.start("broken-1")

    [letter] = wait_for(
        lambda: list_dead_letters(config["AMQP_URI"], "work"), what="a dead letter"
    )
    assert letter.tries == 1
    assert letter.error_type == "Broken"
    assert "broken-1 cannot work" in letter.error


def test_a_replayed_dead_letter_runs_again(work, config):
    FAILURES_LEFT["later"] = 99
    work.start("later")
    [letter] = wait_for(
        lambda: list_dead_letters(config["AMQP_URI"], "work"), what="a dead letter"
    )
    FAILURES_LEFT["later"] = 0

    replayed = replay(config["AMQP_URI"], "work", [letter.id])

    assert [r.id for r in replayed] == [letter.id]
    wait_for(lambda: len(runs_of("later")) == 4, what="the replayed run")
    assert list_dead_letters(config["AMQP_URI"], "work") == []


def test_dead_letters_command_lists_and_replays(work, config):
    work.start("broken-2")
    wait_for(lambda: list_dead_letters(config["AMQP_URI"], "work"), what="one")
    command = [sys.executable, "-m", "sfsync.cli", "dead-letters"]
    common = ["--service", "work", "--amqp-uri", config["AMQP_URI"]]

    listed = subprocess.run(
        [*command, "list", *common], capture_output=True, text=True, timeout=60
    )
    unknown = subprocess.run(
        [*command, "replay", "nope", *common],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert listed.returncode == 0, listed.stderr
    assert (
        'job["broken-2"]  after 1 tries: Broken: broken-2 cannot work' in listed.stdout
    )
    assert unknown.returncode == 2
    assert "no dead letter with id nope" in unknown.stderr


def test_a_waiting_retry_survives_a_restart_of_the_service(config, runner_factory):
    runner = runner_factory(config, WorkService)
    runner.start()
    FAILURES_LEFT["restart"] = 1
    with ServiceRpcProxy("work", config) as proxy:
        proxy.start("restart")
    wait_for(lambda: len(runs_of("restart")) == 1, what="the first try")
    runner.stop()

    time.sleep(0.5)  # the retry comes due while nothing consumes the queue
    runner = runner_factory(config, WorkService)
    runner.start()

    wait_for(lambda: len(runs_of("restart")) == 2, what="the retry after restart")
