"""The bulk RPCs of SalesforceLinked: one transaction and one event per batch."""

import logging
from unittest.mock import call

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import create_engine, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from sfsync.extensions.source import SOURCE_KEY, Source
from sfsync.services import linked
from sfsync.services.accounts import AccountsService
from sfsync.services.contacts import Base, Contact, ContactsService
from sfsync.services.linked import ChangeLog, _sqlite_wal


class FakeWorkerContext:
    def __init__(self, data):
        self.data = data


@pytest.fixture
def engine(tmp_path):
    # A file, so that a second session can play another worker.
    engine = create_engine(f"sqlite:///{tmp_path / 'platform.sqlite'}")
    event.listen(engine, "connect", _sqlite_wal)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine):
    return sessionmaker(bind=engine)


def make_service(sessions, from_salesforce=False, service_cls=ContactsService):
    data = {SOURCE_KEY: True} if from_salesforce else {}
    service = worker_factory(service_cls, source=Source(FakeWorkerContext(data)))
    service.db.session = sessions()
    return service


@pytest.fixture
def user(sessions):
    return make_service(sessions)


@pytest.fixture
def sync(sessions):
    return make_service(sessions, from_salesforce=True)


@pytest.fixture
def statements(engine):
    """The SQL statements the engine runs, first word upper-cased."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def changes(sessions):
    with sessions() as session:
        return [
            (row.record_id, row.action, row.source)
            for row in session.scalars(select(ChangeLog).order_by(ChangeLog.id))
        ]


def linked_contact(service, last_name, salesforce_id):
    created = service.create({"last_name": last_name})
    service.link_salesforce_id(created["id"], salesforce_id)
    service.dispatch.reset_mock()
    return created["id"]


def row(salesforce_id, platform_id=None, **data):
    return {"salesforce_id": salesforce_id, "platform_id": platform_id, "data": data}


# -- create_many ----------------------------------------------------------------


def test_create_many_announces_one_batch_event_with_the_created_records(user):
    results = user.create_many([{"last_name": "A"}, {}, {"last_name": "C"}])

    first, second = results[0]["id"], results[2]["id"]
    user.dispatch.assert_called_once_with(
        "contact_batch",
        {
            "action": "created",
            "records": [
                {"id": first, "salesforce_id": None},
                {"id": second, "salesforce_id": None},
            ],
        },
    )


def test_create_many_announces_nothing_when_every_row_is_refused(user):
    results = user.create_many([{}, {"first_name": "Nameless"}])

    assert [sorted(result) for result in results] == [["error"], ["error"]]
    user.dispatch.assert_not_called()
    assert user.count() == 0


def test_create_many_logs_each_created_record_and_one_line(user, sessions, caplog):
    caplog.set_level(logging.INFO, logger=linked.__name__)

    results = user.create_many([{"last_name": "A"}, {"last_name": "B"}, {}])

    assert changes(sessions) == [
        (results[0]["id"], "created", "platform"),
        (results[1]["id"], "created", "platform"),
    ]
    assert [r.getMessage() for r in caplog.records] == [
        "contact batch create of 3 rows: 2 created, 1 refused (source=platform)"
    ]


def test_create_many_of_accounts_announces_an_account_batch(sessions):
    accounts = make_service(sessions, service_cls=AccountsService)

    (created,) = accounts.create_many([{"name": "Acme"}])

    accounts.dispatch.assert_called_once_with(
        "account_batch",
        {
            "action": "created",
            "records": [{"id": created["id"], "salesforce_id": None}],
        },
    )


# -- find_many_by_salesforce_id -------------------------------------------------


def test_find_many_by_salesforce_id_answers_in_order_with_none_for_unknown(
    user, statements
):
    first = linked_contact(user, "A", "003A")
    second = linked_contact(user, "B", "003B")
    statements.clear()

    found = user.find_many_by_salesforce_id(["003B", "003NONE", "003A", "003B"])

    assert found == [second, None, first, second]
    assert statements == ["SELECT"]


def test_find_many_by_salesforce_id_of_nothing_is_nothing(user):
    assert user.find_many_by_salesforce_id([]) == []


# -- link_many ---------------------------------------------------------------------


def test_link_many_links_and_reports_the_records_that_are_gone(sync, sessions):
    first = sync.create({"last_name": "A"})["id"]
    second = sync.create({"last_name": "B"})["id"]

    linked_ = sync.link_many([[first, "003A"], [999, "003GONE"], [second, "003B"]])

    assert linked_ == [True, False, True]
    assert sync.find_many_by_salesforce_id(["003A", "003B"]) == [first, second]
    assert changes(sessions)[2:] == [
        (first, "updated", "salesforce"),
        (second, "updated", "salesforce"),
    ]


def test_link_many_announces_only_the_records_whose_link_changed(sync):
    already = linked_contact(sync, "A", "003A")
    fresh = sync.create({"last_name": "B"})["id"]
    sync.dispatch.reset_mock()

    sync.link_many([[already, "003A"], [fresh, "003B"]])

    sync.dispatch.assert_called_once_with(
        "contact_batch",
        {"action": "updated", "records": [{"id": fresh, "salesforce_id": "003B"}]},
    )


def test_link_many_changing_nothing_writes_and_announces_nothing(sync, statements):
    already = linked_contact(sync, "A", "003A")
    statements.clear()

    assert sync.link_many([[already, "003A"], [404, "003X"]]) == [True, False]

    sync.dispatch.assert_not_called()
    assert "UPDATE" not in statements and "INSERT" not in statements
    assert sync.change_counts() == {"salesforce": {"created": 1, "updated": 1}}


def test_link_many_of_one_record_twice_keeps_the_last_link(sync, sessions):
    record = sync.create({"last_name": "A"})["id"]
    sync.dispatch.reset_mock()

    sync.link_many([[record, "003FIRST"], [record, "003LAST"]])

    assert sync.get(record)["salesforce_id"] == "003LAST"
    assert changes(sessions) == [
        (record, "created", "salesforce"),
        (record, "updated", "salesforce"),
    ]
    sync.dispatch.assert_called_once_with(
        "contact_batch",
        {"action": "updated", "records": [{"id": record, "salesforce_id": "003LAST"}]},
    )


def test_link_many_linking_a_record_away_and_back_is_no_change(sync, sessions):
    record = linked_contact(sync, "A", "003A")
    before = changes(sessions)

    sync.link_many([[record, "003ELSE"], [record, "003A"]])

    assert sync.get(record)["salesforce_id"] == "003A"
    assert changes(sessions) == before
    sync.dispatch.assert_not_called()


def test_link_many_to_a_salesforce_id_another_record_holds_links_none(sync):
    linked_contact(sync, "Holder", "003HELD")
    other = sync.create({"last_name": "B"})["id"]
    third = sync.create({"last_name": "C"})["id"]
    sync.dispatch.reset_mock()

    with pytest.raises(IntegrityError):
        sync.link_many([[third, "003C"], [other, "003HELD"]])

    assert sync.get(third)["salesforce_id"] is None
    sync.dispatch.assert_not_called()


# -- upsert_many_from_salesforce ---------------------------------------------------


def test_upsert_many_answers_each_row_in_order(sync, user):
    updated = linked_contact(user, "Old", "003UPD")
    same = linked_contact(user, "Same", "003SAME")
    by_platform_id = user.create({"last_name": "Unlinked"})["id"]
    buried = linked_contact(user, "Buried", "003BURIED")
    user.delete(buried)

    results = sync.upsert_many_from_salesforce(
        [
            row("003NEW", last_name="New"),
            row("003UPD", last_name="Changed"),
            row("003SAME", same, last_name="Same"),
            row("003BURIED", last_name="Back"),
            row("003PID", by_platform_id, last_name="Linked now"),
        ]
    )

    created = sync.find_by_salesforce_id("003NEW")
    assert results == [
        {"id": created, "created": True, "deleted": False},
        {"id": updated, "created": False, "deleted": False},
        {"id": same, "created": False, "deleted": False},
        {"id": None, "created": False, "deleted": True},
        {"id": by_platform_id, "created": False, "deleted": False},
    ]
    assert sync.get(updated)["last_name"] == "Changed"
    assert sync.get(by_platform_id)["salesforce_id"] == "003PID"


def test_upsert_many_announces_one_created_and_one_updated_batch(sync, user):
    updated = linked_contact(user, "Old", "003UPD")
    same = linked_contact(user, "Same", "003SAME")

    results = sync.upsert_many_from_salesforce(
        [
            row("003NEW1", last_name="New"),
            row("003UPD", last_name="Changed"),
            row("003SAME", last_name="Same"),
            row("003NEW2", last_name="New"),
        ]
    )

    assert same == results[2]["id"]
    assert sync.dispatch.call_args_list == [
        call(
            "contact_batch",
            {
                "action": "created",
                "records": [
                    {"id": results[0]["id"], "salesforce_id": "003NEW1"},
                    {"id": results[3]["id"], "salesforce_id": "003NEW2"},
                ],
            },
        ),
        call(
            "contact_batch",
            {
                "action": "updated",
                "records": [{"id": updated, "salesforce_id": "003UPD"}],
            },
        ),
    ]


def test_upsert_many_logs_each_written_record_with_its_source(sync, user, sessions):
    updated = linked_contact(user, "Old", "003UPD")
    linked_contact(user, "Same", "003SAME")
    before = changes(sessions)

    results = sync.upsert_many_from_salesforce(
        [
            row("003NEW", last_name="New"),
            row("003UPD", last_name="Changed"),
            row("003SAME", last_name="Same"),
        ]
    )

    assert changes(sessions)[len(before) :] == [
        (results[0]["id"], "created", "salesforce"),
        (updated, "updated", "salesforce"),
    ]


def test_upsert_many_of_unchanged_rows_writes_and_announces_nothing(
    sync, user, sessions, statements
):
    first = linked_contact(user, "A", "003A")
    second = linked_contact(user, "B", "003B")
    before = changes(sessions)
    statements.clear()

    results = sync.upsert_many_from_salesforce(
        [row("003A", first, last_name="A"), row("003B", last_name="B")]
    )

    assert [result["id"] for result in results] == [first, second]
    sync.dispatch.assert_not_called()
    assert changes(sessions) == before
    assert set(statements) <= {"SELECT"}


def test_upsert_many_does_one_query_per_lookup_whatever_the_rows(
    sync, user, statements
):
    existing = [linked_contact(user, f"Old {n}", f"003OLD{n}") for n in range(5)]
    rows = [row(f"003OLD{n}", existing[n], last_name=f"New {n}") for n in range(5)]
    rows += [row(f"003NEW{n}", last_name=f"New {n}") for n in range(5)]
    statements.clear()

    sync.upsert_many_from_salesforce(rows)

    # Tombstones, records by id, records by Salesforce id; nothing re-read
    # after the commit.
    assert statements.count("SELECT") == 3
    assert statements[:3] == ["SELECT"] * 3


def test_upsert_many_looks_up_in_chunks(sync, user, monkeypatch, statements):
    monkeypatch.setattr(linked, "LOOKUP_CHUNK", 2)
    existing = [linked_contact(user, f"Old {n}", f"003OLD{n}") for n in range(4)]
    user.delete(existing[2])
    statements.clear()

    results = sync.upsert_many_from_salesforce(
        [row(f"003OLD{n}", existing[n], last_name=f"New {n}") for n in range(4)]
        + [row("003NEW", last_name="New")]
    )

    assert [(r["id"], r["deleted"]) for r in results] == [
        (existing[0], False),
        (existing[1], False),
        (None, True),
        (existing[3], False),
        (sync.find_by_salesforce_id("003NEW"), False),
    ]
    assert statements.count("SELECT") == 3 * 3  # three lookups a chunk


@pytest.mark.parametrize(
    "bad_row, message",
    [
        (row("003BAD", first_name="No last name"), "Salesforce contact 003BAD is"),
        (row("003BAD", 1.5, last_name="X"), "Salesforce contact 003BAD names 1.5"),
        (row("003BAD", True, last_name="X"), "Salesforce contact 003BAD names True"),
        ({"platform_id": None, "data": {"last_name": "X"}}, "row 0 needs"),
        ("not a row", "row 0 needs"),
    ],
)
def test_upsert_many_refuses_an_invalid_row_alone(sync, bad_row, message):
    results = sync.upsert_many_from_salesforce([bad_row, row("003OK", last_name="OK")])

    assert results[0]["error_type"] == "InvalidRecord"
    assert results[0]["error"].startswith(message)
    assert sorted(results[0]) == ["error", "error_type"]
    assert results[1]["created"] is True
    assert sync.count() == 1


def test_upsert_many_refuses_a_conflicting_row_alone(sync, user):
    owner = linked_contact(user, "Owner", "003FIRST")

    results = sync.upsert_many_from_salesforce(
        [row("003SECOND", owner, last_name="Taken"), row("003OK", last_name="OK")]
    )

    assert results[0] == {
        "error": (
            f"Salesforce contact 003SECOND names contact {owner} in "
            "Platform_Id__c, which is linked to 003FIRST"
        ),
        "error_type": "LinkConflict",
    }
    assert user.get(owner)["last_name"] == "Owner"
    assert results[1]["created"] is True


@pytest.mark.parametrize("named_by", ["salesforce_id", "platform_id"])
def test_upsert_many_does_not_revive_a_record_the_platform_deleted(
    sync, user, sessions, named_by
):
    gone = linked_contact(user, "Gone", "003GONE")
    user.delete(gone)
    before = changes(sessions)
    dead = (
        row("003GONE", last_name="Back")
        if named_by == "salesforce_id"
        else row("003OTHER", gone, last_name="Back")
    )

    results = sync.upsert_many_from_salesforce([dead])

    assert results == [{"id": None, "created": False, "deleted": True}]
    assert sync.count() == 0
    assert changes(sessions) == before
    sync.dispatch.assert_not_called()


def test_upsert_many_of_one_salesforce_id_twice_keeps_the_later_on_one_record(
    sync, sessions
):
    results = sync.upsert_many_from_salesforce(
        [
            row("003TWICE", last_name="Earlier", title="Kept"),
            row("003TWICE", last_name="Later"),
        ]
    )

    record = results[0]["id"]
    assert results == [
        {"id": record, "created": True, "deleted": False},
        {"id": record, "created": False, "deleted": False},
    ]
    assert sync.count() == 1
    assert sync.get(record)["last_name"] == "Later"
    assert changes(sessions) == [(record, "created", "salesforce")]
    sync.dispatch.assert_called_once_with(
        "contact_batch",
        {"action": "created", "records": [{"id": record, "salesforce_id": "003TWICE"}]},
    )


def test_upsert_many_finds_a_record_an_earlier_row_linked(sync, user):
    unlinked = user.create({"last_name": "Unlinked"})["id"]

    results = sync.upsert_many_from_salesforce(
        [
            row("003NOW", unlinked, last_name="Linked"),
            row("003NOW", last_name="Edited"),
        ]
    )

    assert [result["id"] for result in results] == [unlinked, unlinked]
    assert sync.count() == 1
    assert sync.get(unlinked)["last_name"] == "Edited"


def test_upsert_many_changed_then_changed_back_is_no_change(sync, user, sessions):
    record = linked_contact(user, "Same", "003SAME")
    before = changes(sessions)

    sync.upsert_many_from_salesforce(
        [row("003SAME", last_name="Other"), row("003SAME", last_name="Same")]
    )

    sync.dispatch.assert_not_called()
    assert changes(sessions) == before
    assert sync.get(record)["last_name"] == "Same"


def test_upsert_many_of_nothing_is_nothing(sync):
    assert sync.upsert_many_from_salesforce([]) == []

    sync.dispatch.assert_not_called()


def another_worker_creates(service, sessions, salesforce_id, last_name):
    """Between the service's lookups and its commit, once."""
    lookups = service._known
    raced = []

    def racing_lookups(keys):
        known = lookups(keys)
        if not raced:
            with sessions() as other:
                winner = Contact(last_name=last_name, salesforce_id=salesforce_id)
                other.add(winner)
                other.commit()
                raced.append(winner.id)
        return known

    service._known = racing_lookups
    return raced


def test_upsert_many_writes_row_by_row_when_another_worker_got_in_first(
    sync, sessions, caplog
):
    raced = another_worker_creates(sync, sessions, "003RACE", "Theirs")
    caplog.set_level(logging.INFO, logger=linked.__name__)

    results = sync.upsert_many_from_salesforce(
        [row("003NEW", last_name="New"), row("003RACE", last_name="Ours")]
    )

    (winner,) = raced
    created = sync.find_by_salesforce_id("003NEW")
    assert results == [
        {"id": created, "created": True, "deleted": False},
        {"id": winner, "created": False, "deleted": False},
    ]
    assert sync.count() == 2
    assert sync.get(winner)["last_name"] == "Ours"
    assert changes(sessions) == [
        (created, "created", "salesforce"),
        (winner, "updated", "salesforce"),
    ]
    assert [r.getMessage() for r in caplog.records] == [
        "contact batch upsert row by row of 2 rows: 1 created, 1 updated, "
        "0 deleted, 0 refused (source=salesforce)"
    ]
    assert sync.dispatch.call_args_list == [
        call(
            "contact_batch",
            {
                "action": "created",
                "records": [{"id": created, "salesforce_id": "003NEW"}],
            },
        ),
        call(
            "contact_batch",
            {
                "action": "updated",
                "records": [{"id": winner, "salesforce_id": "003RACE"}],
            },
        ),
    ]


def test_upsert_many_row_by_row_keeps_refusals_and_the_later_duplicate(
    sync, user, sessions
):
    owner = linked_contact(user, "Owner", "003FIRST")
    another_worker_creates(sync, sessions, "003RACE", "Theirs")

    results = sync.upsert_many_from_salesforce(
        [
            {"data": {}},
            row("003SECOND", owner, last_name="Taken"),
            row("003TWICE", last_name="Earlier"),
            row("003RACE", last_name="Ours"),
            row("003TWICE", last_name="Later"),
        ]
    )

    assert [result.get("error_type") for result in results] == [
        "InvalidRecord",
        "LinkConflict",
        None,
        None,
        None,
    ]
    assert results[2]["id"] == results[4]["id"]
    assert sync.get(results[4]["id"])["last_name"] == "Later"
    created, updated = (c.args[1] for c in sync.dispatch.call_args_list)
    assert created["records"] == [{"id": results[2]["id"], "salesforce_id": "003TWICE"}]
    assert updated["records"] == [{"id": results[3]["id"], "salesforce_id": "003RACE"}]


# -- the one-record calls, sharing the code -----------------------------------------


def test_upsert_from_salesforce_still_announces_its_own_event(sync):
    result = sync.upsert_from_salesforce("003ONE", None, {"last_name": "One"})

    sync.dispatch.assert_called_once_with(
        "contact_created", {"id": result["id"], "salesforce_id": "003ONE"}
    )


def test_upsert_from_salesforce_updates_the_record_another_worker_created(
    sync, sessions
):
    raced = another_worker_creates(sync, sessions, "003RACE", "Theirs")

    result = sync.upsert_from_salesforce("003RACE", None, {"last_name": "Ours"})

    (winner,) = raced
    assert result == {"id": winner, "created": False, "deleted": False}
    assert sync.get(winner)["last_name"] == "Ours"
    assert sync.count() == 1
    sync.dispatch.assert_called_once_with(
        "contact_updated", {"id": winner, "salesforce_id": "003RACE"}
    )


# -- deleted_salesforce_id --------------------------------------------------------


def test_a_deleted_record_still_tells_which_salesforce_record_it_was(user):
    linked = linked_contact(user, "Linked", "003L")
    unlinked = user.create({"last_name": "Unlinked"})["id"]
    alive = linked_contact(user, "Alive", "003A")

    user.delete(linked)
    user.delete(unlinked)

    assert user.deleted_salesforce_id(linked) == "003L"
    assert user.deleted_salesforce_id(unlinked) is None
    assert user.deleted_salesforce_id(alive) is None


# -- start-up ------------------------------------------------------------------


def test_tables_created_by_another_service_meanwhile_do_not_stop_the_start(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    engine, other = create_engine(url), create_engine(url)
    raced = []

    def other_service_first(conn, cursor, statement, parameters, context, many):
        if statement.lstrip().startswith("CREATE TABLE changes") and not raced:
            raced.append(statement)
            linked.ChangeLog.__table__.create(other)  # between check and CREATE

    event.listen(engine, "before_cursor_execute", other_service_first)

    linked.create_tables(engine)

    assert raced
    with engine.connect() as conn:
        names = {
            row[0]
            for row in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
    assert {"changes", "tombstones", "contacts"} <= names
