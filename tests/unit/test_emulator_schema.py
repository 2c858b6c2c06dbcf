import pytest

from sfsync.emulator.errors import ApiError
from sfsync.emulator.schema import CONTACT, PUSH_TOPIC


def coerce_error(body, creating=True):
    with pytest.raises(ApiError) as info:
        CONTACT.coerce(body, creating=creating)
    return info.value


def test_valid_contact_body_is_canonicalised():
    values = CONTACT.coerce(
        {"lastname": "Smith", "Email": "  a@b.example ", "Birthdate": "1990-02-03",
         "Phone": "", "attributes": {"type": "Contact"}},
        creating=True,
    )  # fmt: skip

    assert values == {
        "LastName": "Smith",
        "Email": "a@b.example",
        "Birthdate": "1990-02-03",
        "Phone": None,
    }


def test_missing_last_name_on_create():
    error = coerce_error({"FirstName": "Ann"})

    assert (error.status, error.code, error.fields) == (
        400,
        "REQUIRED_FIELD_MISSING",
        ["LastName"],
    )


def test_nulling_last_name_on_update():
    assert coerce_error({"LastName": ""}, creating=False).code == (
        "REQUIRED_FIELD_MISSING"
    )


def test_update_without_last_name_is_fine():
    assert CONTACT.coerce({"Title": "CEO"}, creating=False) == {"Title": "CEO"}


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"LastName": "x", "Nope__c": 1}, "INVALID_FIELD", None),
        ({"LastName": "x", "Name": "A B"}, "INVALID_FIELD_FOR_INSERT_UPDATE", "Name"),
        ({"LastName": "x", "Id": "003Em0000000001"}, "INVALID_FIELD_FOR_INSERT_UPDATE",
         "Id"),
        ({"LastName": "x", "CreatedDate": "2024-01-01T00:00:00Z"},
         "INVALID_FIELD_FOR_INSERT_UPDATE", "CreatedDate"),
        ({"LastName": "x" * 81}, "STRING_TOO_LONG", "LastName"),
        ({"LastName": "x", "Platform_Id__c": "p" * 33}, "STRING_TOO_LONG",
         "Platform_Id__c"),
        ({"LastName": "x", "Email": "not-an-email"}, "INVALID_EMAIL_ADDRESS", "Email"),
        ({"LastName": "x", "Birthdate": "1990-13-01"}, "JSON_PARSER_ERROR", None),
        ({"LastName": "x", "HasOptedOutOfEmail": "maybe"}, "JSON_PARSER_ERROR", None),
        ({"LastName": "x", "AccountId": "bad"}, "MALFORMED_ID", "AccountId"),
        ({"LastName": "x", "OwnerId": "003Em0000000001"}, "MALFORMED_ID", "OwnerId"),
    ],
)  # fmt: skip
def test_invalid_values(body, code, field):
    error = coerce_error(body)

    assert error.code == code
    if field is not None:
        assert error.fields == [field]


def test_account_id_accepts_any_well_formed_id():
    values = CONTACT.coerce(
        {"LastName": "x", "AccountId": "001D000000IqhSL"}, creating=True
    )

    assert values["AccountId"] == "001D000000IqhSLIAZ"


def test_email_length_is_checked_after_trimming():
    email = "a" * 70 + "@example.com"

    assert len(email) > 80
    assert coerce_error({"LastName": "x", "Email": email}).code == "STRING_TOO_LONG"


def test_push_topic_api_version_accepts_a_string():
    values = PUSH_TOPIC.coerce(
        {"Name": "Contacts", "Query": "SELECT Id FROM Contact", "ApiVersion": "37.0"},
        creating=True,
    )

    assert values["ApiVersion"] == 37.0


def test_push_topic_notify_for_fields_is_restricted():
    with pytest.raises(ApiError) as info:
        PUSH_TOPIC.coerce({"NotifyForFields": "Sometimes"}, creating=False)

    assert info.value.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
