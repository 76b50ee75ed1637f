"""Registering organizations and persons: identifiers are validated and normalized where they enter."""
from __future__ import annotations

from django.db import transaction

from treasury import identifiers
from treasury.models import Organization, Person


def register_organization(*, name: str, org_type: str, uscc: str, code: str = "",
                          parent: Organization | None = None) -> Organization:
    """Create an organization, or return the one with this credit code (same name and type).

    Raises:
        InvalidIdentifier: the unified social credit code is malformed or its check character wrong
            (unless whitelisted in USCC_CHECKSUM_WHITELIST).
    """
    uscc = identifiers.validate_uscc(uscc)
    with transaction.atomic():
        organization, _ = Organization.objects.get_or_create(
            uscc=uscc, defaults={"name": name, "org_type": org_type, "code": code, "parent": parent}
        )
    return organization


def register_person(*, name: str, resident_id: str, mobile: str = "") -> tuple[Person, tuple[str, ...]]:
    """Create a person, or return the one with this ID number; also returns validation warnings
    (an unknown or not-yet-assigned region code is a warning, not an error).

    Raises:
        InvalidIdentifier: wrong length or format, wrong check digit, impossible birth date.
    """
    checked = identifiers.validate_resident_id(resident_id)
    person, _ = Person.objects.get_or_create(resident_id=checked.number, defaults={"name": name.strip(), "mobile": mobile})
    return person, checked.warnings
