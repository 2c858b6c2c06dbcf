"""The contacts service's generated CRUD over real RabbitMQ."""

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy

from sfsync.services.contacts import ContactsService

pytestmark = pytest.mark.integration

PEOPLE = [
    ("Turner", "Sara", "Leeds"),
    ("Ng", "Li", "Oslo"),
    ("Abe", "Kai", "Oslo"),
    ("Diaz", "Ana", None),
    ("Berg", "Ola", "Oslo"),
]


@pytest.fixture
def config(broker_uri, tmp_path):
    return {
        "AMQP_URI": broker_uri,
        "DB_URIS": {"contacts:Base": f"sqlite:///{tmp_path / 'contacts.sqlite3'}"},
    }


@pytest.fixture
def contacts(config, runner_factory):
    runner = runner_factory(config, ContactsService)
    runner.start()
    with ServiceRpcProxy("contacts", config, timeout=30) as proxy:
        for last, first, city in PEOPLE:
            proxy.create({"last_name": last, "first_name": first, "mailing_city": city})
        yield proxy


def test_list_filters_sorts_and_pages_over_rpc(contacts):
    in_oslo = {"field": "mailing_city", "op": "eq", "value": "Oslo"}

    first = contacts.list(0, 2, filters=[in_oslo], order_by=["-last_name"])
    second = contacts.list(2, 2, filters=[in_oslo], order_by=["-last_name"])

    assert [c["last_name"] for c in first] == ["Ng", "Berg"]
    assert [c["last_name"] for c in second] == ["Abe"]


def test_nested_groups_and_count_over_rpc(contacts):
    filters = {
        "or": [
            {"field": "mailing_city", "op": "is_null"},
            {
                "and": [
                    {"field": "mailing_city", "op": "eq", "value": "Oslo"},
                    {"field": "first_name", "op": "in", "value": ["Kai", "Ola"]},
                ]
            },
        ]
    }

    found = contacts.list(filters=filters, order_by=[{"field": "last_name"}])

    assert [c["last_name"] for c in found] == ["Abe", "Berg", "Diaz"]
    assert contacts.count(filters=filters) == 3
    assert contacts.count(linked=False, filters=filters) == 3


def test_a_bad_filter_comes_back_as_invalid_filter_naming_the_field(contacts):
    with pytest.raises(RemoteError) as caught:
        contacts.list(filters={"field": "last_name; --", "op": "eq", "value": "x"})

    assert caught.value.exc_type == "InvalidFilter"
    assert "unknown field 'last_name; --'" in caught.value.value


def test_a_bad_operator_comes_back_as_invalid_filter_naming_it(contacts):
    with pytest.raises(RemoteError) as caught:
        contacts.count(filters={"field": "email", "op": "matches", "value": "x"})

    assert caught.value.exc_type == "InvalidFilter"
    assert "unknown operator 'matches' for field 'email'" in caught.value.value


def test_sql_in_a_value_matches_nothing_and_harms_nothing(contacts):
    found = contacts.list(
        filters={"field": "last_name", "op": "eq", "value": "x' OR '1'='1"}
    )

    assert found == []
    assert contacts.count() == len(PEOPLE)
