"""Trace events, actors and details read in words, in the page's language: the kind and keys stay what is stored and
hashed."""
import re

import pytest
from django.utils import translation

from treasury.trace.labels import (ACTOR_LABELS, actor_label, detail_label, detail_labels, event_label, event_labels,
                                   subject_label, subject_url, subjects)

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_domain_names_its_events_in_both_languages():
    labels = event_labels()
    for kind in ("transfer.settled", "receipt.issued", "fiscal.quota.reserved", "payroll.batch.approved",
                 "tax.refund.approved", "tax.reconciliation.correction.proposed", "social.declaration.paid",
                 "social.flexible.paid"):
        assert kind in labels, kind
    with translation.override("zh-hans"):
        untranslated = {kind: str(label) for kind, label in labels.items() if not CJK.search(str(label))}
        assert not untranslated
        assert all(CJK.search(str(label)) for label in ACTOR_LABELS.values())
        assert all(CJK.search(str(label)) for label, _ in subjects().values())
    with translation.override("en"):
        assert not [str(label) for label in labels.values() if CJK.search(str(label))]


def test_a_label_is_its_own_word_not_a_page_word_of_the_same_english():
    with translation.override("zh-hans"):
        # "Paid" on pages is 已发放 or 已支付; each domain's paid event says what was paid.
        assert event_label("payroll.batch.paid") == "工资已全部发放"
        assert event_label("social.declaration.paid") == "社保费已缴纳"
        assert event_label("fiscal.request.paid") == "已全部支付"
        assert event_label("tax.refund.approved") == "退库申请已批准"
        assert actor_label("tips") == "税务系统" and actor_label("operator") == "数字人民币运营机构"
    with translation.override("en"):
        assert event_label("tax.refund.approved") == "Refund order approved"
        assert actor_label("system") == "the service"


def test_a_kind_or_actor_nobody_names_shows_as_written():
    assert event_label("someone.else.happened") == "someone.else.happened"
    assert actor_label("clerk_a") == "clerk_a"
    assert subject_label("someone.else") == "someone.else" and subject_url("someone.else", "1") == ""


def test_a_subject_links_to_its_page_where_it_has_one():
    with translation.override("zh-hans"):
        assert subject_label("tax.package") == "批量扣税包"
    assert subject_url("tax.package", "7") == "/tax/packages/7/"
    assert subject_url("payroll.batch", "3") == "/payroll/3/"
    assert subject_url("fiscal.quota", "ZB2026-101001-001") == ""  # a quota has no page of its own


@pytest.mark.django_db
def test_trace_page_and_api_give_the_words_and_keep_the_kind(world, client):
    client.force_login(world.user_a)
    html = client.get(f"/trace/transfer/{world.transfer_a.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert '<span title="transfer.settled">转账已结算</span>' in html
    assert '<span title="payroll.batch.approved">工资发放已审批</span>' in html
    assert ">数字人民币运营机构</small>" in html  # the operator settled it
    assert '<a href="/payroll/1/" title="payroll.batch">工资发放批次 1</a>' in html
    api = client.get(f"/api/v1/trace/transfers/{world.transfer_a.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    settled = next(e for e in api["events"] if e["kind"] == "transfer.settled")
    assert settled["kind_label"] == "转账已结算" and settled["actor"] == "operator"
    assert settled["actor_label"] == "数字人民币运营机构"
    assert settled["details"][0] == {"key": "key", "label": "幂等键", "value": "PAY-A-0001"}
    assert '<span class="muted" title="payee">收款钱包</span>' in html
    assert api["events"][0]["subject_label"] == "工资发放批次"


def test_every_detail_key_is_named_in_both_languages():
    named = detail_labels()
    for key in ("operator_txn_id", "payer", "reason", "succ_num", "tax_vou_no", "proposed_by", "reserved_fen",
                "wallet_balance_fen", "standing_authorisation", "period", "late_fee_fen"):
        assert key in named, key
    with translation.override("zh-hans"):
        assert not {key: str(label) for key, label in named.items() if not CJK.search(str(label))}
        assert detail_label("succ_num") == "成功总笔数" and detail_label("operator_txn_id") == "运营机构交易流水号"
    with translation.override("en"):
        assert not [str(label) for label in named.values() if CJK.search(str(label))]
        assert detail_label("someone_elses_key") == "someone_elses_key"


def _details(data: dict) -> list:
    from datetime import datetime, timezone

    from treasury.trace.selectors import CHAIN_OK, TimelineEvent

    event = TimelineEvent(id=1, stream_key="s", seq=1, kind="k", subject_type="t", subject_id="1", source_ref="",
                          actor="system", amount_fen=None, data=data, occurred_at=datetime.now(timezone.utc),
                          prev_hash="", hash="", chain_status=CHAIN_OK, checkpointed=False)
    return [(d.key, d.label, d.value) for d in event.details]


def test_a_detail_value_reads_in_words_in_stored_order():
    data = {"succ_num": 3, "wallet_balance_fen": 500_000_00, "submitted": True, "duplicate": False,
            "refused_items": ["00000007", "00000009"], "error": "", "reason": None, "refused": 0,
            "conditions": {"purposes": ["SALARY"]}, "fen": 5}
    with translation.override("zh-hans"):
        assert _details(data) == [
            ("succ_num", "成功总笔数", "3"), ("wallet_balance_fen", "钱包余额", "¥500,000.00"),
            ("submitted", "创建即发送", "是"), ("duplicate", "曾经发送", "否"),
            ("refused_items", "被拒明细", "00000007, 00000009"), ("error", "错误", "—"), ("reason", "原因", "—"),
            ("refused", "拒绝笔数", "0"), ("conditions", "智能合约条件", '{"purposes": ["SALARY"]}'), ("fen", "fen", "5"),
        ]
    with translation.override("en"):
        assert _details({"submitted": True, "paid": 39})[0] == ("submitted", "Sent when created", "yes")


@pytest.mark.django_db
def test_a_person_named_by_id_in_the_details_reads_as_their_username():
    from tests import factories as f

    reviewer = f.make_user(role="tax_staff")
    with translation.override("zh-hans"):
        assert _details({"reviewed_by": reviewer.pk, "proposed_by": 999_999}) == [
            ("reviewed_by", "复核人", reviewer.username), ("proposed_by", "提出人", "999999")]  # a user since removed
