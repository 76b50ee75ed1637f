"""The reconciliation pages, with the partials the social insurance pages share (run now, case actions,
corrections, case filters), in both languages."""
from __future__ import annotations

import datetime as dt

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


def test_a_run_under_way_and_one_that_stopped_follow_the_language(run, tax):  # noqa: F811
    from django.utils import timezone

    from tax.reconciliation.models import ReconciliationRun, RunStep

    mine = ReconciliationRun.objects.create(check_date=run.check_date, tax_org_code=tax.authority.code,
                                            step=RunStep.MATCHING, step_at=timezone.now(),
                                            requested_by=tax.staff.username, requested_at=timezone.now())
    client = logged_in(tax.staff)
    url = reverse("tax:reconciliation-run", args=[mine.pk])
    english = ["Reconciling", "Asked for by", "s ago.", "The figures appear here when it ends."]
    chinese = ["正在对账", "发起。", "秒。", "对账完成后本页显示结果"]
    html = page(client, url, "en")
    assert_english(html, url)
    assert all(text in html for text in english) and 'data-testid="step-seconds"' in html
    html = page(client, url, "zh-hans")
    assert_chinese(html, url)
    assert all(text in html for text in chinese) and 'data-testid="step-seconds"' in html

    ReconciliationRun.objects.filter(pk=mine.pk).update(runs=1)  # a finished run before this one
    assert "the last finished run's" in page(client, url, "en")
    assert "上一次完成的对账结果" in page(client, url, "zh-hans")

    ReconciliationRun.objects.filter(pk=mine.pk).update(step="", failure="运营机构对账单获取失败 (x)")
    assert "The last attempt stopped" in page(client, url, "en") and "Run again" in page(client, url, "en")
    assert "上一次执行未完成" in page(client, url, "zh-hans") and "重新对账" in page(client, url, "zh-hans")
    ReconciliationRun.objects.filter(pk=mine.pk).update(step=RunStep.FETCHING, step_at=timezone.now() - dt.timedelta(
        hours=1))
    assert "the work stopped. Run it again." in page(client, url, "en")
    assert "对账已中断" in page(client, url, "zh-hans")
