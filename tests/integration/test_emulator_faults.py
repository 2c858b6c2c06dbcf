import time

import pytest
import requests

from sfsync.testing.emulator import start_emulator
from tests.integration.test_emulator_streaming import Bayeux
from tests.integration.test_emulator_surface import Api

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    process = start_emulator(
        tmp_path_factory.mktemp("emulator-faults"), connect_timeout=CONNECT_TIMEOUT
    )
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def no_faults(emulator):
    emulator.clear_faults()
    yield
    emulator.clear_faults()


def streaming_client(emulator, api):
    bayeux = Bayeux(emulator, api.token)
    bayeux.handshake()
    bayeux.connect()
    return bayeux


def test_revoked_session_gets_401_on_rest_and_streaming(emulator):
    api = Api(emulator)
    bayeux = streaming_client(emulator, api)

    assert emulator.revoke_sessions("sync@platform.example") >= 1

    response = api.call("GET", "/limits")
    _, connect = bayeux.connect()
    assert response.status_code == 401
    assert response.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert connect["error"] == "401::Authentication invalid"
    assert connect["advice"]["reconnect"] == "none"


def test_sessions_expire_after_their_ttl_on_the_emulator_clock(emulator):
    api = Api(emulator)
    emulator.set_faults(session_ttl_seconds=3600)
    assert api.call("GET", "/limits").status_code == 200

    emulator.advance_clock(3601)

    assert api.call("GET", "/limits").status_code == 401
    assert Api(emulator).call("GET", "/limits").status_code == 200


def test_forgotten_client_is_told_to_handshake(emulator):
    bayeux = streaming_client(emulator, Api(emulator))

    assert emulator.forget_clients() >= 1

    _, connect = bayeux.connect()
    assert connect["successful"] is False
    assert connect["error"] == "403::Unknown client"
    assert connect["advice"]["reconnect"] == "handshake"


def test_daily_limit_reached(emulator):
    api = Api(emulator)
    emulator.set_faults(api_limit_reached=True)

    response = api.call("GET", "/limits")

    assert response.status_code == 403
    assert response.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def lock_pattern(emulator, api, seed):
    emulator.set_faults(seed=seed, lock_row_share=0.5)
    outcomes = []
    for index in range(20):
        response = api.call("POST", "/sobjects/Contact", json={"LastName": f"L{index}"})
        if response.status_code == 400:
            assert response.json()[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
        outcomes.append(response.status_code)
    return outcomes


def test_lock_row_share_is_deterministic_with_a_seed(emulator):
    api = Api(emulator)

    first = lock_pattern(emulator, api, seed=7)
    second = lock_pattern(emulator, api, seed=7)

    assert first == second
    assert 201 in first and 400 in first


def test_unavailable_share_answers_503(emulator):
    api = Api(emulator)
    emulator.set_faults(unavailable_share=1.0)

    response = api.call("GET", "/limits")

    assert response.status_code == 503
    assert response.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"


def test_added_latency(emulator):
    api = Api(emulator)
    emulator.set_faults(latency_ms=300)

    started = time.monotonic()
    api.call("GET", "/limits")

    assert time.monotonic() - started >= 0.3


def test_duplicate_delivery(emulator):
    api = Api(emulator)
    bayeux = streaming_client(emulator, api)
    assert bayeux.subscribe("/data/ContactChangeEvent")["successful"]
    emulator.set_faults(duplicate_share=1.0)

    api.create("Contact", LastName="Twice")
    events = bayeux.events(2)

    assert len(events) == 2
    assert events[0] == events[1]


def test_unknown_fault_switch_is_refused(emulator):
    response = requests.post(
        f"{emulator.http_url}/_emulator/faults", json={"gremlins": 1}, timeout=10
    )

    assert response.status_code == 400
    assert "gremlins" in response.json()["error"]


def test_faults_given_at_start(tmp_path):
    process = start_emulator(
        tmp_path / "emu",
        faults={"unavailable_share": 1.0, "seed": 3},
        extra_args=["--fault", "latency_ms=5"],
    )
    try:
        faults = process.faults()
        status = Api(process).call("GET", "/limits").status_code
    finally:
        process.stop()

    assert faults["unavailable_share"] == 1.0
    assert faults["latency_ms"] == 5.0
    assert status == 503
