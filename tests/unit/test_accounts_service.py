import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from sfsync.extensions.source import Source
from sfsync.services.accounts import AccountsService, InvalidAccount
from sfsync.services.contacts import Contact  # its table shares the metadata
from sfsync.services.linked import Base


class FakeWorkerContext:
    data: dict = {}


@pytest.fixture
def service():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    session = sessionmaker(bind=engine)()
    service = worker_factory(AccountsService, source=Source(FakeWorkerContext()))
    service.db.session = session
    yield service
    session.close()


def test_create_announces_an_account_event(service):
    created = service.create({"name": "Acme", "number_of_employees": "12"})

    assert created["number_of_employees"] == 12
    service.dispatch.assert_called_once_with(
        "account_created", {"id": created["id"], "salesforce_id": None}
    )


def test_an_account_needs_a_name(service):
    with pytest.raises(InvalidAccount, match="name: is required"):
        service.create({"industry": "Finance"})


def test_changes_of_accounts_are_counted_apart_from_contacts(service):
    service.create({"name": "Acme"})

    assert service.change_counts() == {"platform": {"created": 1}}


def test_an_account_with_contacts_cannot_be_deleted(service):
    account = service.create({"name": "Busy"})
    service.db.session.add(Contact(last_name="Member", account_id=account["id"]))
    service.db.session.commit()

    with pytest.raises(InvalidAccount, match="still has 1 contacts"):
        service.delete(account["id"])

    assert service.get(account["id"]) is not None


def test_an_account_without_contacts_is_deleted(service):
    account = service.create({"name": "Idle"})

    assert service.delete(account["id"]) is True
    assert service.get(account["id"]) is None
