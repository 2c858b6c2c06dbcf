"""List filters, sorting and paging compiled against a real SQLite table."""

import datetime

import pytest
from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    String,
    create_engine,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sfsync.extensions.filters import (
    OPERATORS,
    InvalidFilter,
    InvalidOrder,
    InvalidPage,
    ModelQuery,
)


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    city: Mapped[str | None] = mapped_column(String(40))
    age: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    born: Mapped[datetime.date | None] = mapped_column(Date)
    seen: Mapped[datetime.datetime | None] = mapped_column(DateTime)


PEOPLE = [
    Person(id=1, name="Ada", city="London", age=36, score=9.5, active=True,
           born=datetime.date(1815, 12, 10), seen=datetime.datetime(2024, 1, 1)),
    Person(id=2, name="Bob", city=None, age=None, score=None, active=False),
    Person(id=3, name="Cy", city="Paris", age=20, score=4.0, active=True,
           born=datetime.date(2004, 5, 1)),
    Person(id=4, name="ada", city="london", age=50, score=7.0, active=False),
]  # fmt: skip

PEOPLE_QUERY = ModelQuery(Person, max_page_size=3)


@pytest.fixture(scope="module")
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(PEOPLE)
        session.commit()
        yield session


def ids(session, filters=None, order_by=None):
    statement = (
        select(Person.id)
        .where(*PEOPLE_QUERY.where(filters))
        .order_by(*PEOPLE_QUERY.order_by(order_by))
    )
    return list(session.scalars(statement))


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (None, [1, 2, 3, 4]),
        ([], [1, 2, 3, 4]),
        ({"field": "name", "op": "eq", "value": "Ada"}, [1]),
        ({"field": "name", "op": "ne", "value": "Ada"}, [2, 3, 4]),
        ({"field": "age", "op": "lt", "value": 36}, [3]),
        ({"field": "age", "op": "le", "value": 36}, [1, 3]),
        ({"field": "age", "op": "gt", "value": 36}, [4]),
        ({"field": "age", "op": "ge", "value": 36.0}, [1, 4]),
        ({"field": "score", "op": "gt", "value": 5}, [1, 4]),
        ({"field": "id", "op": "in", "value": [2, 4, 99]}, [2, 4]),
        ({"field": "id", "op": "not_in", "value": [2, 4]}, [1, 3]),
        ({"field": "id", "op": "in", "value": []}, []),
        ({"field": "name", "op": "like", "value": "C%"}, [3]),
        ({"field": "name", "op": "ilike", "value": "a%"}, [1, 4]),
        ({"field": "city", "op": "is_null"}, [2]),
        ({"field": "city", "op": "is_not_null", "value": None}, [1, 3, 4]),
        ({"field": "active", "op": "eq", "value": False}, [2, 4]),
        ({"field": "born", "op": "gt", "value": "1900-01-01"}, [3]),
        ({"field": "seen", "op": "ge", "value": "2024-01-01T00:00:00"}, [1]),
    ],
)
def test_each_operator_selects_the_matching_rows(session, filters, expected):
    assert ids(session, filters) == expected


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            [
                {"field": "active", "op": "eq", "value": True},
                {"field": "age", "op": "gt", "value": 30},
            ],
            [1],
        ),
        (
            {
                "or": [
                    {"field": "city", "op": "is_null"},
                    {"field": "name", "op": "eq", "value": "Cy"},
                ]
            },
            [2, 3],
        ),
        (
            {
                "and": [
                    {"field": "name", "op": "ilike", "value": "ada"},
                    {
                        "or": [
                            {"field": "age", "op": "gt", "value": 40},
                            {"field": "city", "op": "eq", "value": "Paris"},
                        ]
                    },
                ]
            },
            [4],
        ),
        ({"not": {"field": "active", "op": "eq", "value": True}}, [2, 4]),
    ],
)
def test_groups_nest_and_combine(session, filters, expected):
    assert ids(session, filters) == expected


def test_every_documented_operator_is_implemented():
    assert set(OPERATORS) == {
        "eq", "ne", "lt", "le", "gt", "ge", "in", "not_in",
        "like", "ilike", "is_null", "is_not_null",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"field": "nope", "op": "eq", "value": 1}, r"filters: unknown field 'nope'"),
        ({"field": "name", "op": "regex", "value": "x"}, r"unknown operator 'regex'"),
        ({"field": "name", "op": "eq"}, r"eq on 'name' needs a value"),
        ({"field": "age", "op": "eq", "value": "36"}, r"'age' takes int values"),
        ({"field": "age", "op": "eq", "value": True}, r"'age' takes int values"),
        ({"field": "age", "op": "eq", "value": 1.5}, r"'age' takes int values"),
        ({"field": "active", "op": "eq", "value": 1}, r"'active' takes bool"),
        ({"field": "born", "op": "lt", "value": "yesterday"}, r"ISO date strings"),
        ({"field": "born", "op": "lt", "value": 20240101}, r"ISO date strings"),
        ({"field": "age", "op": "like", "value": "3%"}, r"like needs a text field"),
        ({"field": "id", "op": "in", "value": 3}, r"in on 'id' needs a list"),
        ({"field": "id", "op": "in", "value": [1, "2"]}, r"'id' takes int values"),
        ({"field": "city", "op": "is_null", "value": "x"}, r"takes no value"),
        ({"field": "name", "op": "eq", "value": "x", "extra": 1}, r"'extra'"),
        ({"and": []}, r"filters.and: expected a non-empty list"),
        ({"or": {"field": "name"}}, r"filters.or: expected a non-empty list"),
        ({"and": [1], "or": [2]}, r"a group has exactly one key"),
        ([{"field": "name", "op": "eq", "value": "A"}, "name = 'A'"],
         r"filters\[1\]: expected an object"),
        ({"or": [{"field": "name", "op": "eq", "value": "A"}, {"field": "x"}]},
         r"filters.or\[1\]: unknown field 'x'"),
        ({"field": ["name"], "op": "eq", "value": "A"}, r"unknown field \['name'\]"),
    ],
)  # fmt: skip
def test_bad_filters_are_refused_naming_where_and_what(filters, message):
    with pytest.raises(InvalidFilter, match=message):
        PEOPLE_QUERY.where(filters)


def test_deep_nesting_is_refused():
    node = {"field": "name", "op": "eq", "value": "A"}
    for _ in range(10):
        node = {"not": node}

    with pytest.raises(InvalidFilter, match="nest deeper than"):
        PEOPLE_QUERY.where(node)


def test_too_many_conditions_are_refused():
    many = [{"field": "id", "op": "eq", "value": n} for n in range(101)]

    with pytest.raises(InvalidFilter, match="more than 100 conditions"):
        PEOPLE_QUERY.where(many)


@pytest.mark.parametrize(
    "field",
    [
        "name; DROP TABLE people; --",
        'name" OR 1=1 --',
        "name' OR '1'='1",
        "people.name",
        "1=1",
        "__class__",
        "metadata",
        "_sa_instance_state",
    ],
)
def test_field_names_that_are_not_columns_are_refused(session, field):
    with pytest.raises(InvalidFilter, match="unknown field"):
        PEOPLE_QUERY.where({"field": field, "op": "eq", "value": "x"})


@pytest.mark.parametrize(
    "value",
    [
        "x' OR '1'='1",
        "Ada'; DROP TABLE people; --",
        '" OR ""="',
        "%' OR 1=1 --",
    ],
)
def test_sql_in_a_value_is_only_a_value(session, value):
    assert ids(session, {"field": "name", "op": "eq", "value": value}) == []
    assert ids(session, {"field": "name", "op": "like", "value": value}) == []
    assert session.scalar(select(func.count()).select_from(Person)) == 4


def test_a_value_is_sent_as_a_bound_parameter():
    (condition,) = PEOPLE_QUERY.where({"field": "name", "op": "eq", "value": "x'--"})

    compiled = condition.compile()

    assert "x'--" not in str(compiled)
    assert list(compiled.params.values()) == ["x'--"]


def test_fields_limit_what_can_be_filtered():
    query = ModelQuery(Person, fields=["name"])

    with pytest.raises(InvalidFilter, match="unknown field 'age'; use one of name"):
        query.where({"field": "age", "op": "eq", "value": 1})


def test_fields_must_be_columns_of_the_model():
    with pytest.raises(ValueError, match="Person has no column nope"):
        ModelQuery(Person, fields=["name", "nope"])


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (None, [1, 2, 3, 4]),
        ("-id", [4, 3, 2, 1]),
        (["name"], [1, 2, 3, 4]),
        (["-active", "-age"], [1, 3, 4, 2]),
        ([{"field": "score", "direction": "desc"}], [1, 4, 3, 2]),
        ([{"field": "active"}, "id"], [2, 4, 1, 3]),
        (["city"], [2, 1, 3, 4]),
    ],
)
def test_order_by_sorts_by_each_key_then_the_primary_key(session, order_by, expected):
    assert ids(session, order_by=order_by) == expected


@pytest.mark.parametrize(
    ("order_by", "message"),
    [
        (["nope"], r"order_by\[0\]: unknown field 'nope'"),
        (["name", "-name DESC; DROP TABLE people"], r"order_by\[1\]: unknown field"),
        ([{"field": "name", "direction": "up"}], r"direction must be 'asc' or"),
        ([{"field": "name", "dir": "asc"}], r"unexpected key 'dir'"),
        ([3], r"order_by\[0\]: expected 'field'"),
        (42, r"expected a list of sort keys"),
    ],
)
def test_bad_sort_keys_are_refused(order_by, message):
    with pytest.raises(InvalidOrder, match=message):
        PEOPLE_QUERY.order_by(order_by)


@pytest.mark.parametrize(
    ("offset", "limit", "expected"),
    [(0, 2, (0, 2)), (5, 100, (5, 3)), (0, -1, (0, 0)), (0, 3, (0, 3))],
)
def test_page_caps_the_limit_at_the_maximum_page_size(offset, limit, expected):
    assert PEOPLE_QUERY.page(offset, limit) == expected


@pytest.mark.parametrize(
    ("offset", "limit", "message"),
    [
        (-1, 10, "offset must be 0 or more"),
        ("0", 10, "offset must be a whole number, got str"),
        (0, 2.5, "limit must be a whole number, got float"),
        (0, True, "limit must be a whole number, got bool"),
        (0, None, "limit must be a whole number, got NoneType"),
    ],
)
def test_bad_pages_are_refused(offset, limit, message):
    with pytest.raises(InvalidPage, match=message):
        PEOPLE_QUERY.page(offset, limit)
