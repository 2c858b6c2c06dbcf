import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from sfsync.extensions.crud import InvalidFilter
from sfsync.extensions.source import SOURCE_KEY, Source
from sfsync.services.contacts import (
    Base,
    ContactNotFound,
    ContactsService,
    InvalidContact,
)
from sfsync.services.linked import LinkConflict


class FakeWorkerContext:
    def __init__(self, data):
        self.data = data


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    session = sessionmaker(bind=engine)()
    yield session
    session.close()


def make_service(session, from_salesforce=False):
    data = {SOURCE_KEY: True} if from_salesforce else {}
    service = worker_factory(ContactsService, source=Source(FakeWorkerContext(data)))
    service.db.session = session
    return service


def test_create_commits_and_announces_with_the_id(session):
    service = make_service(session)

    created = service.create({"last_name": "Turner", "email": " s@t.uk "})

    assert created["email"] == "s@t.uk"
    service.dispatch.assert_called_once_with(
        "contact_created", {"id": created["id"], "salesforce_id": None}
    )
    assert service.get(created["id"])["last_name"] == "Turner"


def test_create_refuses_invalid_data_naming_the_field(session):
    service = make_service(session)

    with pytest.raises(InvalidContact, match="last_name: is required"):
        service.create({"first_name": "Nameless"})

    service.dispatch.assert_not_called()


def test_create_many_creates_good_rows_and_reports_bad_ones(session):
    service = make_service(session)

    results = service.create_many([{"last_name": "A"}, {}, {"last_name": "C"}])

    assert "id" in results[0] and "id" in results[2]
    assert "row 1" in results[1]["error"]
    assert service.count() == 2


def test_upsert_from_salesforce_finds_by_platform_id_before_salesforce_id(session):
    service = make_service(session)
    existing = service.create({"last_name": "Before"})

    result = service.upsert_from_salesforce(
        "003A", existing["id"], {"last_name": "After"}
    )

    assert result == {"id": existing["id"], "created": False, "deleted": False}
    assert service.get(existing["id"])["salesforce_id"] == "003A"
    again = service.upsert_from_salesforce("003A", None, {"last_name": "Again"})
    assert again == {"id": existing["id"], "created": False, "deleted": False}
    assert service.count() == 1


def test_changes_are_logged_by_source(session):
    user = make_service(session)
    created = user.create({"last_name": "A"})
    sync = make_service(session, from_salesforce=True)

    sync.link_salesforce_id(created["id"], "003B")
    sync.delete_by_salesforce_id("003B")

    assert user.change_counts() == {
        "platform": {"created": 1},
        "salesforce": {"updated": 1, "deleted": 1},
    }


def test_count_linked_and_unlinked(session):
    service = make_service(session)
    first = service.create({"last_name": "A"})
    service.create({"last_name": "B"})
    service.link_salesforce_id(first["id"], "003C")

    assert service.count(linked=True) == 1
    assert service.count(linked=False) == 1


def test_list_keeps_id_order_and_pages_by_default(session):
    service = make_service(session)
    for name in ["C", "A", "B"]:
        service.create({"last_name": name})

    assert [c["last_name"] for c in service.list(1, 5)] == ["A", "B"]


def test_list_filters_and_sorts(session):
    service = make_service(session)
    for name, city in [("Ng", "Oslo"), ("Abe", "Oslo"), ("Li", "Rome")]:
        service.create({"last_name": name, "mailing_city": city})

    found = service.list(
        filters={"field": "mailing_city", "op": "eq", "value": "Oslo"},
        order_by=["last_name"],
    )

    assert [c["last_name"] for c in found] == ["Abe", "Ng"]


def test_list_refuses_an_unknown_field_naming_it(session):
    service = make_service(session)

    with pytest.raises(InvalidFilter, match="unknown field 'password'"):
        service.list(filters={"field": "password", "op": "eq", "value": "x"})


def test_count_combines_linked_with_filters(session):
    service = make_service(session)
    first = service.create({"last_name": "A", "email": "a@x.org"})
    service.create({"last_name": "B", "email": "b@x.org"})
    service.link_salesforce_id(first["id"], "003D")

    with_email = {"field": "email", "op": "like", "value": "%@x.org"}
    assert service.count(linked=False, filters=with_email) == 1
    assert service.count(filters=with_email) == 2


def test_update_of_a_missing_contact_raises_contact_not_found(session):
    service = make_service(session)

    with pytest.raises(ContactNotFound, match="contact 7 does not exist"):
        service.update(7, {"last_name": "X"})


def test_delete_logs_the_change_and_announces_it(session):
    service = make_service(session)
    created = service.create({"last_name": "Gone"})

    assert service.delete(created["id"]) is True

    service.dispatch.assert_called_with(
        "contact_deleted", {"id": created["id"], "salesforce_id": None}
    )
    assert service.change_counts() == {"platform": {"created": 1, "deleted": 1}}


def test_a_salesforce_change_after_a_platform_delete_does_not_revive_it(session):
    service = make_service(session)
    created = service.create({"last_name": "Gone"})
    service.link_salesforce_id(created["id"], "003GONE")
    service.delete(created["id"])
    sync = make_service(session, from_salesforce=True)

    by_link = sync.upsert_from_salesforce("003GONE", None, {"last_name": "Edited"})
    by_id = sync.upsert_from_salesforce("003OTHER", created["id"], {"last_name": "E"})

    assert by_link == {"id": None, "created": False, "deleted": True}
    assert by_id == {"id": None, "created": False, "deleted": True}
    assert service.count() == 0


def test_a_second_salesforce_record_claiming_a_contact_is_a_conflict(session):
    service = make_service(session)
    created = service.create({"last_name": "Owner"})
    service.link_salesforce_id(created["id"], "003FIRST")

    with pytest.raises(LinkConflict, match="linked to 003FIRST"):
        service.upsert_from_salesforce("003SECOND", created["id"], {"last_name": "X"})

    assert service.get(created["id"])["last_name"] == "Owner"


def test_find_by_salesforce_id(session):
    service = make_service(session)
    created = service.create({"last_name": "Found"})
    service.link_salesforce_id(created["id"], "003F")

    assert service.find_by_salesforce_id("003F") == created["id"]
    assert service.find_by_salesforce_id("003NONE") is None


@pytest.mark.parametrize("account_id", ["12", 1.5, True])
def test_account_id_must_be_an_integer(session, account_id):
    service = make_service(session)

    with pytest.raises(InvalidContact, match="account_id"):
        service.create({"last_name": "A", "account_id": account_id})


def test_account_id_is_stored_and_served(session):
    service = make_service(session)

    created = service.create({"last_name": "A", "account_id": 4})

    assert service.get(created["id"])["account_id"] == 4


def test_writing_what_is_already_there_is_no_change(session):
    sync = make_service(session, from_salesforce=True)
    first = sync.upsert_from_salesforce("003S", None, {"last_name": "Same"})
    sync.dispatch.reset_mock()

    again = sync.upsert_from_salesforce("003S", first["id"], {"last_name": "Same"})

    assert again == {"id": first["id"], "created": False, "deleted": False}
    sync.dispatch.assert_not_called()
    assert sync.change_counts() == {"salesforce": {"created": 1}}
