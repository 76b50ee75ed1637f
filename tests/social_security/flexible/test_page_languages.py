"""The flexible-employment pages in both languages: English chrome with the English cookie and no Chinese
labels, the Chinese labels by default. The clock is pinned: September is 26 days overdue."""
from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.urls import reverse

from tests.clients import logged_in
from tests.social_security.flexible.conftest import NOW
from tests.social_security.test_page_languages import assert_language, main_part

ENROL = [("Enrol for flexible employment", "灵活就业参保登记"), ("Pooling region", "统筹地区"),
         ("Payment frequency", "缴费方式"), ("Your personal wallet id", "本人个人钱包")]
MINE = [("My social insurance", "我的社保缴费"), ("Months owed", "缴费月份"), ("Late fees to today", "滞纳金至今日"),
        ("26 days overdue", "欠费 26 天"), ("Pay up to here", "缴至此月"), ("Apply the change", "变更"),
        ("Download the statement (PDF)", "下载缴费记录 PDF")]
PAY = [("Confirm the payment", "确认缴费"), ("Days overdue", "逾期天数"), ("Confirm and pay ¥2,291.41", "确认缴费 ¥2,291.41")]
STAFF = [("Flexible-employment enrolments", "灵活就业参保"), ("Months overdue", "欠费月数"),
         ("Region code", "地区代码"), ("In arrears only", "仅欠费"), ("Amount in arrears", "欠费金额")]


@pytest.fixture(autouse=True)
def _frozen_now():
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        yield


def test_the_flexible_pages_in_english_and_chinese(flex):
    who = flex.individual(name="李四")
    for language, english in (("en", True), ("zh-hans", False)):
        client = logged_in(who.user)
        client.cookies["django_language"] = language
        assert_language(main_part(client.get(reverse("social_flexible:mine"))), ENROL, english=english)
    enrolment = flex.enrol(who)
    september = enrolment.periods.get(month=dt.date(2026, 9, 1))
    for language, english in (("en", True), ("zh-hans", False)):
        person, staff = logged_in(who.user), logged_in(flex.staff)
        person.cookies["django_language"] = staff.cookies["django_language"] = language
        assert_language(main_part(person.get(reverse("social_flexible:mine"))), MINE, english=english)
        pay = person.get(reverse("social_flexible:pay"), {"through": september.pk})
        assert_language(main_part(pay), PAY, english=english)
        assert_language(main_part(staff.get(reverse("social_flexible:staff-list"))), STAFF, english=english)
