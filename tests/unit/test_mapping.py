import pytest

from sfsync.mapping import (
    CONTACT_FIELDS,
    EXTERNAL_ID_FIELD,
    InvalidFields,
    clean_contact,
    from_export_row,
    to_platform,
    to_salesforce,
)


def test_blank_strings_become_none_and_emails_are_trimmed():
    cleaned = clean_contact({"last_name": "Ng", "first_name": "", "email": " A@B.CO "})

    assert cleaned == {"last_name": "Ng", "first_name": None, "email": "A@B.CO"}


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({}, "last_name", "is required"),
        ({"last_name": "  "}, "last_name", "is required"),
        ({"last_name": "x" * 81}, "last_name", "limit is 80"),
        ({"last_name": "N", "email": "not-an-address"}, "email", "not an e-mail"),
        ({"last_name": "N", "birthdate": "02/10/1961"}, "birthdate", "not a date"),
        (
            {"last_name": "N", "has_opted_out_of_email": "maybe"},
            "has_opted_out_of_email",
            "true or false",
        ),
        ({"last_name": "N", "nickname": "Bob"}, "nickname", "unknown field"),
        ({"last_name": 12}, "last_name", "must be text"),
    ],
)
def test_invalid_fields_are_named_with_their_reason(data, field, reason):
    with pytest.raises(InvalidFields) as caught:
        clean_contact(data)

    assert reason in caught.value.problems[field]


def test_partial_update_may_leave_out_required_fields():
    assert clean_contact({"title": "CEO"}, partial=True) == {"title": "CEO"}


def test_round_trip_through_salesforce_keeps_every_field():
    contact = {
        "id": 42,
        **clean_contact(
            {
                "last_name": "Хохлов",
                "first_name": "Аполлон",
                "birthdate": "1961-10-02",
                "has_opted_out_of_email": True,
                "description": "line one\nline two",
            }
        ),
    }

    record = to_salesforce(contact)

    assert record[EXTERNAL_ID_FIELD] == "42"
    assert record["LastName"] == "Хохлов"
    expected = {field.platform: contact.get(field.platform) for field in CONTACT_FIELDS}
    assert to_platform(record) == expected


def test_export_row_maps_salesforce_columns():
    row = {
        "LastName": "Turner",
        "HasOptedOutOfEmail": "false",
        "Birthdate": "",
        "Id": "003x",
    }

    data = from_export_row(row)

    assert data["last_name"] == "Turner"
    assert data["has_opted_out_of_email"] is False
    assert data["birthdate"] is None
