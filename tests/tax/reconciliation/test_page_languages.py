"""The reconciliation pages, with the partials the social insurance pages share (run now, case actions,
corrections, case filters), in both languages."""
from __future__ import annotations

from django.urls import reverse

from tax.reconciliation.models import DiscrepancyCase, Outcome
from tests.clients import logged_in
from tests.tax.reconciliation.test_pages_api import run  # noqa: F401 (the fixture)
from tests.tax.test_page_languages import assert_chinese, assert_english, page


def test_the_reconciliation_pages_follow_the_language(run, tax):  # noqa: F811
    case = DiscrepancyCase.objects.get(outcome=Outcome.AMOUNT_MISMATCH)
    client = logged_in(tax.staff)
    pages = {
        reverse("tax:reconciliation"): (["Run now", "Totals per outcome"], ["立即对账", "分类汇总"]),
        reverse("tax:reconciliation-run", args=[run.pk]): (["Every tax authority", ">Tax system</th>"],
                                                            ["全部征收机关", ">税务方</th>"]),
        reverse("tax:reconciliation-cases"): (["Open → investigating → resolved"], ["待处理 → 调查中 → 已解决"]),
        reverse("tax:reconciliation-case", args=[case.pk]): (
            ["Investigate", "Resolution reason", "Correcting transfers", "Propose a correction", "Case history"],
            ["开始调查", "处理说明", "更正转账", "提出更正", "处理记录"]),
    }
    for url, (english, chinese) in pages.items():
        html = page(client, url, "en")
        assert_english(html, url)
        assert all(text in html for text in english), url
        assert not [text for text in chinese if text in html], url
        html = page(client, url, "zh-hans")
        assert_chinese(html, url)
        assert all(text in html for text in chinese), url

    resolve = reverse("tax:reconciliation-case-resolve", args=[case.pk])
    client.cookies["django_language"] = "en"
    assert "Please give the resolution reason." in client.post(resolve, {"reason": " "}, follow=True).content.decode()
    client.cookies["django_language"] = "zh-hans"
    assert "请填写处理说明。" in client.post(resolve, {"reason": " "}, follow=True).content.decode()
