"""A notes service with CRUD and list filters from one declaration.

Run by tests/unit/test_docs_examples.py: ``run()`` calls the entrypoints
through nameko's ``worker_factory`` on an in-memory SQLite database.
"""

from nameko.events import EventDispatcher
from nameko.testing.services import worker_factory
from nameko_sqlalchemy import Database
from sqlalchemy import Integer, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from sfsync.extensions.crud import CrudEntrypoints


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    topic: Mapped[str | None] = mapped_column(String(20))


class NotesService(CrudEntrypoints, model=Note, record="note", max_page_size=50):
    name = "notes"

    db = Database(Base)
    dispatch = EventDispatcher()  # note_created, note_updated, note_deleted


def run() -> list[str]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    notes = worker_factory(NotesService)
    notes.db.session = sessionmaker(bind=engine)()

    for title, topic in [("Call Ada", "work"), ("Buy milk", "home"), ("Ship", "work")]:
        notes.create({"title": title, "topic": topic})

    work = notes.list(
        filters={"field": "topic", "op": "eq", "value": "work"},
        order_by=["-title"],
        limit=10,
    )
    return [note["title"] for note in work]  # ["Ship", "Call Ada"]
