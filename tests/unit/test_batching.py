import eventlet
import pytest

from sfsync.extensions.batching import Coalescer, batching_config


def test_calls_made_together_go_out_as_one_batch_with_their_own_results():
    batches = []

    def flush(items):
        batches.append(list(items))
        return [item * 10 if item != 3 else ValueError("three") for item in items]

    coalescer = Coalescer(max_size=10, max_wait=0.05)
    threads = [eventlet.spawn(coalescer.submit, n, flush) for n in range(1, 6)]

    outcomes = []
    for thread in threads:
        try:
            outcomes.append(thread.wait())
        except ValueError as exc:
            outcomes.append(str(exc))

    assert batches == [[1, 2, 3, 4, 5]]
    assert outcomes == [10, 20, "three", 40, 50]


def test_a_full_batch_goes_at_once_and_the_rest_waits_for_the_next():
    batches = []

    def flush(items):
        batches.append(len(items))
        return list(items)

    coalescer = Coalescer(max_size=3, max_wait=0.05)
    threads = [eventlet.spawn(coalescer.submit, n, flush) for n in range(7)]
    results = [thread.wait() for thread in threads]

    assert results == list(range(7))
    assert batches == [3, 3, 1]


def test_a_single_call_does_not_wait_for_the_batch_to_fill():
    coalescer = Coalescer(max_size=200, max_wait=0.02)
    started = eventlet.hubs.get_hub().clock()

    assert coalescer.submit("alone", lambda items: ["done"]) == "done"

    assert eventlet.hubs.get_hub().clock() - started < 1.0


def test_a_failed_call_fails_every_row_of_its_batch():
    def flush(items):
        raise ConnectionError("down")

    coalescer = Coalescer(max_size=5, max_wait=0.01)
    threads = [eventlet.spawn(coalescer.submit, n, flush) for n in range(2)]

    for thread in threads:
        with pytest.raises(ConnectionError):
            thread.wait()


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({}, (False, 200, 0.02)),
        ({"ENABLED": 1, "SIZE": 500, "WAIT_MS": 5}, (True, 200, 0.005)),
        ({"ENABLED": "true", "SIZE": 50}, (True, 50, 0.02)),
        ({"ENABLED": 0}, (False, 200, 0.02)),
    ],
)
def test_config(section, expected):
    assert batching_config({"BATCHING": section}) == expected


def test_many_items_of_one_worker_share_batches_and_keep_their_own_outcomes():
    batches = []

    def flush(items):
        batches.append(list(items))
        return [ValueError(item) if item % 4 == 0 else item + 1 for item in items]

    coalescer = Coalescer(max_size=3, max_wait=0.01)
    other = eventlet.spawn(coalescer.submit, 101, flush)
    eventlet.sleep(0)  # the other worker's item goes first
    outcomes = coalescer.submit_many([1, 2, 4, 5], flush)

    assert other.wait() == 102
    assert batches == [[101, 1, 2], [4, 5]]
    assert outcomes[:2] == [2, 3] and outcomes[3] == 6
    assert isinstance(outcomes[2], ValueError)
