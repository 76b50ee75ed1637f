"""The tax pages in both languages: English msgids in the templates and the code, Simplified Chinese from the
tax catalog. The page chrome (headings, table headers, labels, buttons, messages) follows the language
switch; the models' bilingual labels (states, kinds) and the data stay as they are."""
from __future__ import annotations

import re

from django.urls import reverse
from django.utils import timezone

from tax import services
from tax.handlers import TaxHandler
from tax.models import DeductionPackage, RefundOrder, TaxDeduction
from tests.clients import logged_in
from tests.tax.helpers import batch, item
from tests.tax.test_my_tax import individual, voucher
from tests.tax.test_refunds import order, refund_item, refunds  # noqa: F401 (the fixture)

CHROME = re.compile(r"(?s)<(h1|h2|th|dt|label|button)\b[^>]*>(.*?)</\1>")
CJK = re.compile(r"[\u4e00-\u9fff]")
STATE = re.compile(r'(?s)<span class="state[^"]*"[^>]*>.*?</span>')  # a model's label, bilingual on purpose

STAFF_PAGES = {  # page: (its heading in English, in Chinese)
    "tax:agreement-list": ("Three-party agreements", "三方协议"),
    "tax:agreement-sign": ("Sign a three-party agreement", "签订三方协议"),
    "tax:deduction-list": ("Deductions", "扣税记录"),
    "tax:package-list": ("Batch packages", "批量扣税包"),
    "tax:refund-list": ("Refunds", "退库"),
    "tax:reversal-list": ("Reversals and stop payments", "冲正与止付"),
    "tax:entry-report": ("Daily treasury entries", "入库日报"),
    "tax:own-tax": ("An individual pays a tax", "个人自行缴税"),
    "tax:reconciliation": ("Tax reconciliation", "税款对账"),
    "tax:reconciliation-cases": ("Discrepancy cases", "差异处理"),
}


def page(client, url: str, language: str) -> str:
    client.cookies["django_language"] = language
    response = client.get(url, follow=True)
    assert response.status_code == 200, url
    return response.content.decode()


def chrome(html: str) -> list[str]:
    """The texts of the headings, table headers, labels and buttons of the page's main part."""
    main = STATE.sub("", html.split("<main", 1)[1].split("</main>", 1)[0])
    texts = (re.sub(r"<[^>]+>", "", m.group(2)).strip() for m in CHROME.finditer(main))
    return [text for text in texts if re.search(r"[A-Za-z\u4e00-\u9fff]", text)]  # not a figure in a header cell


def assert_english(html: str, url: str) -> None:
    labels = chrome(html)
    assert labels and not [text for text in labels if CJK.search(text)], (url, labels)


def assert_chinese(html: str, url: str) -> None:
    labels = chrome(html)
    assert labels and not [text for text in labels if not CJK.search(text)], (url, labels)


def test_the_staff_pages_follow_the_language(refunds, tips_outbox):
    tax = refunds
    payer, agreement, _ = individual(tax)
    TaxHandler().receive_batch(batch(tax, [item(payer=payer, protocol_no=agreement.protocol_no, amount_fen=100_00)]))
    services.receive_refund_order(message=order([refund_item(payer, amount_fen=88_00)]), now=timezone.now())
    client = logged_in(tax.staff)
    pages = {reverse(name): headings for name, headings in STAFF_PAGES.items()}
    pages.update({  # the lists above have rows now; these pages show one of them
        reverse("tax:agreement-detail", args=[agreement.pk]): ("Three-party agreement", "三方协议"),
        reverse("tax:deduction-detail", args=[TaxDeduction.objects.get().pk]): ("Deduction", "扣税"),
        reverse("tax:package-detail", args=[DeductionPackage.objects.get().pk]): ("Batch package", "批量扣税包"),
        reverse("tax:refund-detail", args=[RefundOrder.objects.get().pk]): ("Refund order", "退库包"),
    })
    for url, (english, chinese) in pages.items():
        html = page(client, url, "en")
        assert f"<h1>{english}" in html, url
        assert_english(html, url)
        html = page(client, url, "zh-hans")
        assert f"<h1>{chinese}" in html, url
        assert_chinese(html, url)

    listed = page(client, reverse("tax:agreement-list"), "en")
    assert "1 agreement ·" in listed and "Sign an agreement" in listed and "签订协议" not in listed
    assert ">Taxpayer ID</label>" in listed and "纳税人识别号" not in listed
    assert '<option value="" selected>All</option>' in listed
    listed = page(client, reverse("tax:agreement-list"), "zh-hans")
    assert "1 份协议 ·" in listed and "签订协议" in listed and "Sign an agreement" not in listed
    assert ">纳税人识别号</label>" in listed and '<option value="" selected>全部</option>' in listed

    suspend = reverse("tax:agreement-action", args=[agreement.pk, "suspend"])
    client.cookies["django_language"] = "en"
    assert "Please give a reason." in client.post(suspend, follow=True).content.decode()
    client.cookies["django_language"] = "zh-hans"
    assert "请填写原因。" in client.post(suspend, follow=True).content.decode()


def test_my_tax_and_its_message_follow_the_language(tax):
    payer, _, user = individual(tax)
    client = logged_in(user)
    client.cookies["django_language"] = "en"
    paid = client.post(reverse("tax:mine"), voucher(wallet_id=payer.wallet_id), follow=True).content.decode()
    assert "Tax paid · voucher 320261100001: ¥321.50 · 90000" in paid and "缴税成功" not in paid
    assert "<h1>My tax</h1>" in paid and "Taxes paid" in paid and "缴税记录" not in paid
    assert_english(paid, "mine")
    html = page(client, reverse("tax:mine"), "zh-hans")
    assert "<h1>我的纳税</h1>" in html and "缴税记录" in html and "Taxes paid" not in html
    assert_chinese(html, "mine")
