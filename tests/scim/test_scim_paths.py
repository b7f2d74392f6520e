"""SCIM attribute paths: the spellings accepted, their canonical form, and the errors for bad ones."""

from __future__ import annotations

import pytest

from airflow_provider_entra.scim import MappingError, parse_path

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CONTOSO = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("userName", "userName"),
        ("username", "userName"),  # Microsoft's own sample payload spells it so; SCIM names ignore case
        ("externalId", "externalId"),
        ("name.givenName", "name.givenName"),
        ("Name.GIVENNAME", "name.givenName"),
        ('emails[type eq "work"].value', 'emails[type eq "work"].value'),
        ("emails[type eq 'work'].value", 'emails[type eq "work"].value'),
        ('Emails[Type EQ "work"].Value', 'emails[type eq "work"].value'),
        ('addresses[type eq "work"].locality', 'addresses[type eq "work"].locality'),
        ('phoneNumbers[type eq "mobile"].value', 'phoneNumbers[type eq "mobile"].value'),
        ('emails[type eq "work"].primary', 'emails[type eq "work"].primary'),
        ("ims.value", "ims.value"),  # an entry without a type
        ("urn:ietf:params:scim:schemas:core:2.0:User:userName", "userName"),
        (f"{ENTERPRISE}:department", f"{ENTERPRISE}:department"),
        (f"{ENTERPRISE.upper()}:DEPARTMENT", f"{ENTERPRISE}:department"),
        (f"{ENTERPRISE}:manager.value", f"{ENTERPRISE}:manager.value"),
        (f"{CONTOSO}:HireDate", f"{CONTOSO}:HireDate"),
        (
            "urn:ietf:params:scim:schemas:extension:csv:1.0:User:WorkerID",
            "urn:ietf:params:scim:schemas:extension:csv:1.0:User:WorkerID",
        ),
    ],
)
def test_accepted_paths_are_canonicalised(written: str, canonical: str) -> None:
    assert str(parse_path(written)) == canonical


def test_path_parts() -> None:
    email = parse_path('emails[type eq "work"].value')
    assert (email.attribute, email.type_filter, email.sub_attribute, email.multi_valued) == (
        "emails",
        "work",
        "value",
        True,
    )
    assert email.is_core and not email.is_custom
    manager = parse_path(f"{ENTERPRISE}:manager.value")
    assert manager.is_enterprise and manager.local == "manager.value"
    hired = parse_path(f"{CONTOSO}:HireDate")
    assert hired.is_custom and hired.schema == CONTOSO and hired.value_type is None
    assert parse_path("active").value_type == "boolean"
    assert parse_path('emails[type eq "work"].primary').value_type == "boolean"


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("emial", "unknown attribute 'emial' in the core User schema (did you mean 'emails'?)"),
        ("givenName", "unknown attribute 'givenName' in the core User schema"),
        (
            f"{ENTERPRISE}:departmnet",
            "unknown attribute 'departmnet' in the enterprise User extension (did you mean 'department'?)",
        ),
        (
            "emails",
            "'emails' is multi-valued, so it cannot take a single value; map a sub-attribute of one entry, "
            "e.g. 'emails[type eq \"work\"].value'",
        ),
        ('addresses[type eq "work"]', "'addresses' is multi-valued, so it cannot take a single value"),
        (
            "name",
            "'name' is complex, so it cannot take a single value; map one of its sub-attributes, "
            "e.g. 'name.formatted'",
        ),
        (f"{ENTERPRISE}:manager", "'manager' is complex, so it cannot take a single value"),
        (
            'displayName[type eq "work"]',
            "'displayName' is not multi-valued, so it takes no [type eq ...] filter",
        ),
        ('name[type eq "work"].givenName', "'name' is not multi-valued"),
        ("displayName.value", "'displayName' is a single string value and has no sub-attribute 'value'"),
        ("active.value", "'active' is a single boolean value"),
        ("name.first", "'name' has no sub-attribute 'first'"),
        ('emails[type eq "work"].adress', "'emails' has no sub-attribute 'adress'"),
        ('emails[type eq "work"].type', "the type of a 'emails' entry is set by the filter"),
        ('emails[type eq ""].value', "the type filter needs a value"),
        ("id", "'id' is assigned by the service (read-only) and cannot be sent"),
        ("meta", "'meta' is assigned by the service"),
        ('groups[type eq "direct"].value', "'groups' is assigned by the service"),
        ("password", "'password' must never travel in an HR feed"),
        ('x509Certificates[type eq "work"].value', "'x509Certificates' holds binary certificates"),
        (f"{ENTERPRISE}:manager.$ref", "'manager.$ref' is not used by Entra"),
        (f"{ENTERPRISE}:manager.displayName", "'manager.displayName' is assigned by the service"),
        (f"{CONTOSO}:Hire.Date", "custom namespace attributes are simple names"),
        (f'{CONTOSO}:Dates[type eq "x"].value', "custom namespace attributes are simple names"),
        (
            "urn:ietf:params:scim:schemas:extension:contoso:User:HireDate",
            "is neither the core nor the enterprise User schema",
        ),
        ("urn:example:foo:HireDate", "is neither the core nor the enterprise User schema"),
        ('emails[type ne "work"].value', "is not a SCIM attribute path"),
        ("name..givenName", "is not a SCIM attribute path"),
        ("", "attribute path must be a non-empty string"),
    ],
)
def test_bad_paths_are_named_in_the_error(written: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_path(written)
    assert message in str(caught.value)
    if written:
        assert caught.value.path == written
        assert repr(written) in str(caught.value)


@pytest.mark.parametrize("module", ["paths", "expressions", "mapping", "records"])
def test_docstring_examples(module: str) -> None:
    import doctest
    import importlib

    results = doctest.testmod(importlib.import_module(f"airflow_provider_entra.scim.{module}"))
    assert results.attempted > 0 and results.failed == 0
