import pytest

from sfsync.emulator.composite import _substitute
from sfsync.emulator.faults import Faults, load_faults


def draws(faults, count=50):
    return [faults.lock_row() for _ in range(count)]


def test_shares_repeat_with_the_same_seed():
    first = Faults(seed=11, lock_row_share=0.3)
    second = Faults(seed=11, lock_row_share=0.3)

    assert draws(first) == draws(second)


def test_zero_share_never_fires():
    assert not any(draws(Faults(seed=1)))


@pytest.mark.parametrize(
    "changes",
    [{"lock_row_share": 1.5}, {"latency_ms": -1}, {"nonsense": 1}],
)
def test_bad_switches_are_refused(changes):
    with pytest.raises(ValueError):
        Faults().update(changes)


def test_cli_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "faults.json"
    path.write_text('{"latency_ms": 10, "api_limit_reached": true}')

    faults = load_faults(path, ["latency_ms=25"])

    assert faults.latency_ms == 25.0
    assert faults.api_limit_reached is True


def test_references_resolve_into_urls_and_bodies():
    done = [
        {"referenceId": "acc", "httpStatusCode": 201, "body": {"id": "001X"}},
        {"referenceId": "q", "httpStatusCode": 200,
         "body": {"records": [{"Id": "003Y"}]}},
    ]  # fmt: skip

    url = _substitute("/sobjects/Contact/@{q.records[0].Id}", done, True)
    body = _substitute({"AccountId": "@{acc.id}"}, done, False)

    assert url == "/sobjects/Contact/003Y"
    assert body == {"AccountId": "001X"}


def test_reference_to_a_missing_subrequest_fails():
    with pytest.raises(LookupError):
        _substitute("@{nope.id}", [], False)
