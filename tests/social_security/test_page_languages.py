"""The declaration and reconciliation pages in both languages: English chrome with the English cookie and no
Chinese labels, the Chinese labels by default. Domain data (names, notes, state labels) stays as it is."""
from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from social_security import services
from tests import factories as f
from tests.clients import logged_in
from tests.social_security.test_declarations import ROWS


def main_part(response) -> str:
    """The page's own content, without the navigation (translated elsewhere)."""
    assert response.status_code == 200
    return response.content.decode().split("<main", 1)[1].split("</main>", 1)[0]


def client_in(user, language: str):
    client = logged_in(user)
    client.cookies["django_language"] = language
    return client


# (English, Chinese) chrome per page.
LIST = [("Social-insurance declarations", "社保费申报"), ("Employer share", "单位缴费"),
        ("Payment voucher", "缴款凭证"), ("1 declaration", "1 份申报"), ("New declaration", "新建申报")]
DETAIL = [("Work-injury risk class", "工伤风险类别"), ("Class 1", "1 类"),
          ("None set: class 1 by default", "未设置，默认一类"), ("Counted base", "核定基数"),
          ("Add an employee", "添加人员"), ("Pension (employer / individual)", "养老 单位/个人")]
NEW = [("Insurance region", "参保地"), ("Contribution period", "费款所属期"), ("Enter on the page", "页面录入"),
       ("Create draft", "建立草稿")]
RUNS = [("Social-insurance premium reconciliation", "社保费对账"), ("Reconciliation runs", "对账批次"),
        ("No reconciliation yet", "还没有对账")]
CASES = [("Premium discrepancy cases", "社保费对账差异"), ("No cases", "没有差异")]


def assert_language(html: str, labels, *, english: bool) -> None:
    for en, zh in labels:
        shown, hidden = (en, zh) if english else (zh, en)
        assert shown in html and hidden not in html, (shown, hidden)


def test_the_declaration_pages_in_english_and_chinese(world):
    declaration = services.create_declaration(user=world.operator_user, region_code="370100", period="2026-03",
                                              rows=ROWS, now=timezone.now())
    detail_url = reverse("social:declaration-detail", args=[declaration.pk])
    for language, english in (("en", True), ("zh-hans", False)):
        client = client_in(world.operator_user, language)
        pages = [(reverse("social:declaration-list"), LIST), (detail_url, DETAIL),
                 (reverse("social:declaration-new"), NEW)]
        for url, labels in pages:
            assert_language(main_part(client.get(url)), labels, english=english)
        # The message, and a refused line's form shown again with its labels, follow the language too.
        done = client.post(reverse("social:declaration-add-line", args=[declaration.pk]),
                           {"name": "赵六", "resident_id": f.make_resident_id(), "base": "6000"}, follow=True)
        assert_language(main_part(done), [("Line added.", "已添加。")], english=english)
        refused = client.post(reverse("social:declaration-add-line", args=[declaration.pk]),
                              {"name": "钱七", "resident_id": f.make_resident_id(), "base": "x"})
        assert refused.status_code == 400 and list(refused.context["line_form"].errors) == ["base"]
        refused.status_code = 200  # the page shown again, read as main_part reads any page
        assert_language(main_part(refused), [("Base (yuan)", "缴费基数(元)")], english=english)


def test_the_reconciliation_pages_in_english_and_chinese(world):
    for language, english in (("en", True), ("zh-hans", False)):
        client = client_in(world.tax_staff, language)
        assert_language(main_part(client.get(reverse("social:reconciliation"))), RUNS, english=english)
        cases = main_part(client.get(reverse("social:reconciliation-cases")))
        assert_language(cases, CASES + [("Discrepancy kind", "差异类型")], english=english)
