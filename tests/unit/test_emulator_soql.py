import pytest

from sfsync.emulator import soql
from sfsync.emulator.errors import SoqlError

ROWS = [
    {"Id": "003Em0000000001IAA", "FirstName": "Ann", "LastName": "Smith",
     "Email": "ann@example.com", "HasOptedOutOfEmail": False,
     "CreatedDate": "2024-05-01T09:00:00.000+0000", "Birthdate": "1990-01-02"},
    {"Id": "003Em0000000002IAA", "FirstName": None, "LastName": "o'Brien",
     "Email": None, "HasOptedOutOfEmail": True,
     "CreatedDate": "2024-05-01T11:00:00.000+0000", "Birthdate": None},
    {"Id": "003Em0000000003IAA", "FirstName": "Bob", "LastName": "smythe_x",
     "Email": "bob@example.org", "HasOptedOutOfEmail": False,
     "CreatedDate": "2024-05-02T00:00:00.000+0000", "Birthdate": "1985-07-08"},
]  # fmt: skip


def run(text: str) -> list[str]:
    query = soql.bind(soql.parse(text))
    return [row["LastName"] for row in soql.execute(query, ROWS)]


def test_parse_select_list_where_order_limit_offset():
    query = soql.parse(
        "select Id, LastName from Contact where LastName = 'x' "
        "order by LastName desc nulls last, Id limit 10 offset 5"
    )

    assert query.fields == ["Id", "LastName"]
    assert query.sobject == "Contact"
    assert query.limit == 10 and query.offset == 5
    assert query.order_by[0].descending and query.order_by[0].nulls_last
    assert not query.order_by[1].descending


def test_bind_gives_canonical_field_names():
    query = soql.bind(soql.parse("SELECT id, LASTNAME, platform_id__c FROM contact"))

    assert query.fields == ["Id", "LastName", "Platform_Id__c"]
    assert query.sobject == "Contact"


def test_count_query():
    query = soql.parse("SELECT COUNT() FROM Contact WHERE Email != null")

    assert query.count and query.fields == []


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("LastName = 'SMITH'", ["Smith"]),
        ("Email = null", ["o'Brien"]),
        ("Email != null", ["Smith", "smythe_x"]),
        ("FirstName != 'Ann'", ["o'Brien", "smythe_x"]),
        ("LastName = 'o\\'Brien'", ["o'Brien"]),
        ("LastName LIKE 'sm%'", ["Smith", "smythe_x"]),
        ("LastName LIKE 'sm_th'", ["Smith"]),
        ("LastName LIKE '%\\_x'", ["smythe_x"]),
        ("LastName IN ('smith', 'nobody')", ["Smith"]),
        ("LastName NOT IN ('smith')", ["o'Brien", "smythe_x"]),
        ("HasOptedOutOfEmail = true", ["o'Brien"]),
        ("CreatedDate > 2024-05-01T10:00:00Z", ["o'Brien", "smythe_x"]),
        ("CreatedDate >= 2024-05-01T11:00:00.000+0000", ["o'Brien", "smythe_x"]),
        ("CreatedDate < 2024-05-01T10:00:00Z", ["Smith"]),
        ("Birthdate <= 1986-01-01", ["smythe_x"]),
        ("NOT (LastName = 'Smith' OR Email = null)", ["smythe_x"]),
        ("(LastName = 'Smith' OR LastName = 'smythe_x') AND FirstName = 'Bob'",
         ["smythe_x"]),
        ("Id = '003Em0000000002'", ["o'Brien"]),
        ("Id IN ('003Em0000000001IAA', '003Em0000000003')", ["Smith", "smythe_x"]),
    ],
)  # fmt: skip
def test_where_filters(where, expected):
    assert run(f"SELECT Id FROM Contact WHERE {where}") == expected


def test_order_by_is_case_insensitive_with_nulls_first_ascending():
    assert run("SELECT Id FROM Contact ORDER BY FirstName") == [
        "o'Brien",
        "Smith",
        "smythe_x",
    ]


def test_order_by_descending_puts_nulls_last():
    assert run("SELECT Id FROM Contact ORDER BY FirstName DESC") == [
        "smythe_x",
        "Smith",
        "o'Brien",
    ]


def test_limit_and_offset():
    assert run("SELECT Id FROM Contact ORDER BY LastName LIMIT 1 OFFSET 1") == ["Smith"]


@pytest.mark.parametrize(
    "text",
    [
        "SELECT FROM Contact",
        "SELECT Id Contact",
        "SELECT Id FROM Contact WHERE",
        "SELECT Id FROM Contact WHERE LastName = ",
        "SELECT Id FROM Contact WHERE LastName 'x'",
        "SELECT Id FROM Contact LIMIT x",
        "SELECT Id FROM Contact WHERE LastName = 'unterminated",
        "SELECT Id FROM Contact trailing",
        "SELECT COUNT(Id) FROM Contact",
    ],
)
def test_malformed_queries(text):
    with pytest.raises(SoqlError) as info:
        soql.parse(text)

    assert info.value.code == "MALFORMED_QUERY"


def test_unknown_field_is_invalid_field():
    with pytest.raises(SoqlError) as info:
        soql.bind(soql.parse("SELECT Id, Nope__c FROM Contact"))

    assert info.value.code == "INVALID_FIELD"


def test_unknown_object_is_invalid_type():
    with pytest.raises(SoqlError) as info:
        soql.bind(soql.parse("SELECT Id FROM Opportunity"))

    assert info.value.code == "INVALID_TYPE"


def test_bad_id_literal_is_invalid_filter():
    with pytest.raises(SoqlError) as info:
        soql.bind(soql.parse("SELECT Id FROM Contact WHERE Id = 'nope'"))

    assert info.value.code == "INVALID_QUERY_FILTER_OPERATOR"


def test_where_fields_are_collected():
    query = soql.bind(
        soql.parse("SELECT Id FROM Contact WHERE Email = 'a' OR NOT (lastname = 'b')")
    )

    assert query.where_fields() == {"Email", "LastName"}
