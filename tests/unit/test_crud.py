"""CrudEntrypoints on a plain model with the default hooks, without a broker."""

import datetime

import pytest
from nameko.cli.run import import_service
from nameko.events import EventDispatcher
from nameko.rpc import rpc
from nameko.testing.services import worker_factory
from nameko_sqlalchemy import Database
from sqlalchemy import Date, Integer, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from sfsync.extensions.crud import (
    CrudEntrypoints,
    InvalidFilter,
    InvalidRecord,
    RecordNotFound,
)
from sfsync.services.contacts import ContactsService


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(40))
    topic: Mapped[str | None] = mapped_column(String(20))
    due: Mapped[datetime.date | None] = mapped_column(Date)


class NotesService(CrudEntrypoints, model=Note, record="note", max_page_size=2):
    name = "notes"

    db = Database(Base)
    dispatch = EventDispatcher()


@pytest.fixture
def service():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    session = sessionmaker(bind=engine)()
    service = worker_factory(NotesService)
    service.db.session = session
    yield service
    session.close()


def entrypoints(service_cls):
    return {
        name
        for name in dir(service_cls)
        if getattr(getattr(service_cls, name), "nameko_entrypoints", None)
    }


def test_declaring_the_model_gives_six_rpc_entrypoints():
    assert entrypoints(NotesService) == {
        "get", "create", "update", "delete", "list", "count",
    }  # fmt: skip


def test_create_commits_and_dispatches_the_id(service):
    created = service.create({"title": "Buy milk", "due": "2024-02-01"})

    assert created == {
        "id": created["id"], "title": "Buy milk", "topic": None, "due": "2024-02-01",
    }  # fmt: skip
    service.dispatch.assert_called_once_with("note_created", {"id": created["id"]})


def test_create_refuses_unknown_missing_and_mistyped_fields(service):
    with pytest.raises(InvalidRecord) as caught:
        service.create({"colour": "red", "due": 5})

    assert str(caught.value) == (
        "the new note is invalid: colour: is not a field; due: 5 is not a DATE; "
        "title: is required"
    )
    service.dispatch.assert_not_called()


def test_update_changes_only_the_given_fields(service):
    created = service.create({"title": "Old", "topic": "home"})

    updated = service.update(created["id"], {"title": "New"})

    assert (updated["title"], updated["topic"]) == ("New", "home")
    service.dispatch.assert_called_with("note_updated", {"id": created["id"]})


def test_update_of_a_missing_record_raises_not_found(service):
    with pytest.raises(RecordNotFound, match="note 99 does not exist"):
        service.update(99, {"title": "x"})


def test_delete_dispatches_and_reports_whether_it_existed(service):
    created = service.create({"title": "Gone"})

    assert service.delete(created["id"]) is True
    assert service.delete(created["id"]) is False
    assert service.get(created["id"]) is None
    service.dispatch.assert_called_with("note_deleted", {"id": created["id"]})


def test_list_filters_sorts_and_caps_the_page(service):
    for title, topic in [("a", "x"), ("b", "y"), ("c", "x"), ("d", "x")]:
        service.create({"title": title, "topic": topic})

    page = service.list(
        0, 50, filters={"field": "topic", "op": "eq", "value": "x"}, order_by="-title"
    )

    assert [note["title"] for note in page] == ["d", "c"]


def test_count_takes_the_same_filters(service):
    for title in ["a", "b", "c"]:
        service.create({"title": title})

    assert service.count(filters=[{"field": "title", "op": "in", "value": ["a"]}]) == 1


def test_list_refuses_an_unknown_operator_naming_it(service):
    with pytest.raises(InvalidFilter, match="unknown operator 'between'"):
        service.list(filters={"field": "title", "op": "between", "value": [1, 2]})


def test_a_service_replaces_an_entrypoint_by_defining_it_with_rpc():
    class Pinned(NotesService):
        @rpc
        def count(self, topic=None):
            return 0

    assert "count" in entrypoints(Pinned)


def test_a_service_without_a_model_is_refused():
    with pytest.raises(TypeError, match="needs a model"):

        class Modelless(CrudEntrypoints):
            name = "modelless"


def test_event_fields_must_be_columns():
    with pytest.raises(TypeError, match="event_fields owner are not columns"):

        class Bad(CrudEntrypoints, model=Note, event_fields=("id", "owner")):
            name = "bad"


def test_the_base_class_has_no_entrypoints_so_nameko_run_skips_it():
    assert entrypoints(CrudEntrypoints) == set()


def test_nameko_run_finds_only_the_contacts_service_in_its_module():
    assert import_service("sfsync.services.contacts") == [ContactsService]


def test_each_service_registers_its_own_entrypoint_functions():
    class OtherNotes(CrudEntrypoints, model=Note, record="other_note"):
        name = "other_notes"

    assert OtherNotes.get is not NotesService.get
    assert OtherNotes.get is not CrudEntrypoints.get
