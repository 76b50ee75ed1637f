"""The business days pages and the API accept: years FIRST_YEAR to LAST_YEAR.

A day is turned into the instants that bound it in Asia/Shanghai (`selectors.business_day_bounds`) and
compared with stored UTC times; 9999-12-31 has no next midnight and 0001-01-01 no UTC start, so an unbounded
date field answered a 500 (OverflowError) instead of saying the day is wrong. Every date filter and date
parameter of the core and the fiscal pages uses these fields, so the bound is kept in one place.
"""
import datetime as dt

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

FIRST_YEAR, LAST_YEAR = 2000, 2100
FIRST_DAY, LAST_DAY = dt.date(FIRST_YEAR, 1, 1), dt.date(LAST_YEAR, 12, 31)


def validate_business_day(day: dt.date) -> None:
    """Raises ValidationError (code `day_out_of_range`) for a day outside FIRST_DAY..LAST_DAY."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationError(_("Enter a day from %(first)s to %(last)s."), code="day_out_of_range",
                              params={"first": FIRST_DAY.isoformat(), "last": LAST_DAY.isoformat()})


class BusinessDayField(forms.DateField):
    """A page's date field, refusing days outside FIRST_DAY..LAST_DAY with a field error."""

    default_validators = [validate_business_day]


class BusinessDaySerializerField(serializers.DateField):
    """An API date field, refusing days outside FIRST_DAY..LAST_DAY with a field error (400)."""

    default_validators = [validate_business_day]
