import datetime as dt

from django.utils import timezone

from adapters.tips.interface import ResultCode
from tax import services
from tax.handlers import TaxHandler
from tax.models import DeductionPackage, DeductionState, PackageState, TaxDeduction, TreasuryEntry
from tests.tax.helpers import batch, item
from treasury.models import Transfer
from treasury.services.ledger import check_ledger
from treasury.trace.models import TraceEvent


def package_of_25(tax):
    """20 items from four funded taxpayers, 3 from one without money (24007), 2 without an agreement (24009)."""
    rich = [tax.taxpayer(balance_fen=10_000_00) for _ in range(4)]
    poor = tax.taxpayer(balance_fen=0)
    agreements = {p.wallet_id: tax.signed_and_verified(p) for p in rich + [poor]}
    unsigned = tax.taxpayer(balance_fen=10_000_00)
    items = [item(payer=rich[n % 4], protocol_no=agreements[rich[n % 4].wallet_id].protocol_no, amount_fen=100_00 + n)
             for n in range(20)]
    items += [item(payer=poor, protocol_no=agreements[poor.wallet_id].protocol_no, amount_fen=50_00) for _ in range(3)]
    items += [item(payer=unsigned, protocol_no="NO-AGREEMENT", amount_fen=70_00) for _ in range(2)]
    return rich, poor, unsigned, items


def test_a_package_is_acknowledged_deducted_in_chunks_and_its_result_sent(tax, tips_outbox, settings):
    settings.TAX_BATCH_CHUNK_SIZE = 10
    rich, poor, unsigned, items = package_of_25(tax)
    message = batch(tax, items)
    ack = TaxHandler().receive_batch(message)
    assert (ack.ori_msg_id, ack.result) == (message.head.msg_id, ResultCode.SUCCESS)

    package = DeductionPackage.objects.get()
    assert package.state == PackageState.DONE and package.result_acknowledged and not package.result_pending
    expected_succ = sum(100_00 + n for n in range(20))
    assert (package.succ_num, package.succ_amount_fen) == (20, expected_succ)
    (sent,) = tips_outbox.sent
    assert (sent.succ_num, sent.succ_amount_fen, sent.all_num, sent.all_amount_fen) == (
        20, expected_succ, 25, message.all_amount_fen)
    assert (sent.ori_pack_no, sent.ori_tax_org_code, sent.ori_entrust_date) == (
        message.pack_no, message.tax_org_code, message.entrust_date)
    codes = [line.result for line in sent.items]
    assert codes == [ResultCode.SUCCESS] * 20 + [ResultCode.INSUFFICIENT_BALANCE] * 3 + [ResultCode.NOT_SIGNED] * 2
    assert [line.ori_tra_no for line in sent.items] == [i.tra_no for i in items]
    assert all(line.tax_date for line in sent.items[:20]) and sent.items[-1].tax_date is None

    assert tax.balance(tax.treasury_wallet.wallet_id) == expected_succ
    assert tax.balance(poor.wallet_id) == 0 and tax.balance(unsigned.wallet_id) == 10_000_00
    assert Transfer.objects.count() == 23  # no transfer for the unsigned items
    assert sum(TreasuryEntry.objects.values_list("amount_fen", flat=True)) == expected_succ
    assert services.package_progress(package_id=package.pk)["decided"] == 25
    kinds = list(TraceEvent.objects.filter(stream_key=package.stream_key).order_by("seq").values_list("kind", flat=True))
    assert kinds[:3] == ["tax.package.received", "tax.package.deducting", "tax.package.chunk"]
    assert kinds.count("tax.package.chunk") == 3  # 25 items in chunks of 10
    assert kinds[-2:] == ["tax.package.done", "tax.package.result_acknowledged"]
    assert check_ledger().problems == []


def test_a_duplicate_package_gets_the_original_ack_and_nothing_more(tax, tips_outbox):
    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    message = batch(tax, [item(payer=payer, protocol_no=agreement.protocol_no, amount_fen=100_00) for _ in range(3)])
    first = services.receive_batch(message=message, now=timezone.now())
    again = services.receive_batch(message=message, now=timezone.now())
    assert first == again and first.result == ResultCode.SUCCESS
    assert TaxDeduction.objects.count() == 3 and len(tips_outbox.sent) == 1
    assert tax.balance(payer.wallet_id) == 700_00
    changed = batch(tax, list(message.items[:2]), pack_no=message.pack_no)
    assert services.receive_batch(message=changed, now=timezone.now()).result == ResultCode.DUPLICATE


def test_bad_packages_are_refused_whole(tax, settings, tips_outbox):
    payer = tax.taxpayer()
    agreement = tax.signed_and_verified(payer)
    items = [item(payer=payer, protocol_no=agreement.protocol_no, amount_fen=1_00) for _ in range(4)]
    for message in (batch(tax, items, all_amount_fen=5_00), batch(tax, items, all_num=5),
                    batch(tax, [items[0], items[0]])):
        ack = services.receive_batch(message=message, now=timezone.now())
        assert ack.result == services.PACKAGE_REFUSED, ack
    settings.TAX_BATCH_MAX_ITEMS = 3
    ack = services.receive_batch(message=batch(tax, items), now=timezone.now())
    assert ack.result == services.PACKAGE_REFUSED and "3" in ack.add_word
    assert DeductionPackage.objects.count() == 0 and TaxDeduction.objects.count() == 0


def test_the_result_is_resent_until_acknowledged(tax, tips_outbox):
    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    tips_outbox.fail_next = 2
    services.receive_batch(message=batch(tax, [item(payer=payer, protocol_no=agreement.protocol_no, amount_fen=10_00)]),
                           now=timezone.now())
    package = DeductionPackage.objects.get()
    assert package.state == PackageState.DONE and package.result_pending and package.result_attempts == 1
    assert "unreachable" in package.result_error
    assert services.finish_packages(now=timezone.now()) == {} and len(tips_outbox.sent) == 1  # just sent
    later = timezone.now() + dt.timedelta(seconds=21)
    services.finish_packages(now=later)
    assert services.finish_packages(now=later) == {}  # sent again a moment ago
    assert services.finish_packages(now=later + dt.timedelta(seconds=39)) == {}  # two failures: 40 s apart
    assert services.finish_packages(now=later + dt.timedelta(seconds=41)) == {"results_acknowledged": 1}
    package.refresh_from_db()
    assert package.result_acknowledged and package.result_attempts == 3
    assert package.result_sent_at == later + dt.timedelta(seconds=41)
    assert len(tips_outbox.sent) == 3 and len({(r.ori_pack_no, r.succ_num) for r in tips_outbox.sent}) == 1
    assert services.finish_packages(now=later + dt.timedelta(hours=1)) == {}
    assert len(tips_outbox.sent) == 3


def test_the_sweep_leaves_a_result_never_tried_to_its_task_for_a_while(tax, tips_outbox, monkeypatch):
    """Sent by the sweep and the package's own task at once, the tax system got a result twice; the sweep takes
    an untried result only when its task has had as long as a resend waits (the task was lost)."""
    monkeypatch.setattr(services, "_enqueue_send_result", lambda package_id: None)  # queued, not run yet
    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    services.receive_batch(message=batch(tax, [item(payer=payer, protocol_no=agreement.protocol_no, amount_fen=10_00)]),
                           now=timezone.now())
    package = DeductionPackage.objects.get()
    assert package.state == PackageState.DONE and package.result_pending and package.result_attempts == 0
    assert services.finish_packages(now=package.done_at + dt.timedelta(seconds=19)) == {}
    assert tips_outbox.sent == []
    assert services.finish_packages(now=package.done_at + dt.timedelta(seconds=21)) == {"results_acknowledged": 1}
    assert len(tips_outbox.sent) == 1


def test_an_unknown_item_waits_for_recovery_before_the_package_is_answered(tax, tips_outbox, settings):
    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 0.5
    from adapters.ecny.client import get_operator_client

    get_operator_client.cache_clear()
    tax.ecny.admin.set_fault("timeout_after_apply", count=1, sleep_seconds=1.5)
    services.receive_batch(message=batch(tax, [item(payer=payer, protocol_no=agreement.protocol_no, amount_fen=10_00)]),
                           now=timezone.now())
    package = DeductionPackage.objects.get()
    assert package.state == PackageState.DEDUCTING and tips_outbox.sent == []
    from treasury.services.transfers import recover_unconfirmed_transfers

    recover_unconfirmed_transfers(now=timezone.now())
    services.finish_packages(now=timezone.now())
    package.refresh_from_db()
    assert package.state == PackageState.DONE and package.succ_num == 1 and package.result_acknowledged
    assert TaxDeduction.objects.get().state == DeductionState.SUCCEEDED
    assert tax.balance(payer.wallet_id) == 990_00
    assert check_ledger().problems == []


def test_processing_a_package_again_changes_nothing(tax, tips_outbox):
    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    services.receive_batch(message=batch(tax, [item(payer=payer, protocol_no=agreement.protocol_no, amount_fen=10_00)]),
                           now=timezone.now())
    package = DeductionPackage.objects.get()
    assert services.process_package(package_id=package.pk, now=timezone.now()) == {}
    assert services.finish_package(package_id=package.pk, now=timezone.now()).state == PackageState.DONE
    assert Transfer.objects.count() == 1 and len(tips_outbox.sent) == 1
    assert tax.balance(payer.wallet_id) == 990_00


def test_an_item_whose_reply_was_lost_and_whose_debit_came_back_is_answered_failed(tax, tips_outbox):
    """The operator debited both items but its reply was lost; by the time recovery asks, one debit came back (the
    treasury's wallet returned it). That item is failed, not succeeded, and not left deducting: the package is
    done and answered, with the other item entered alone."""
    from treasury.services.transfers import recover_unconfirmed_transfers

    payers = [tax.taxpayer(balance_fen=1_000_00) for _ in range(2)]
    items = [item(payer=p, protocol_no=tax.signed_and_verified(p).protocol_no, amount_fen=10_00 + n)
             for n, p in enumerate(payers)]
    tax.ecny.admin.set_fault("error_after_apply", count=1)
    services.receive_batch(message=batch(tax, items), now=timezone.now())
    package = DeductionPackage.objects.get()
    assert package.state == PackageState.DEDUCTING and tips_outbox.sent == []
    back = TaxDeduction.objects.order_by("pk").first()
    tax.ecny.admin.return_transfer(request_id=back.transfer.idempotency_key, reason="退回 (returned)")

    recover_unconfirmed_transfers(now=timezone.now(), older_than_seconds=0)
    services.finish_packages(now=timezone.now())
    package.refresh_from_db()
    back, paid = TaxDeduction.objects.order_by("pk")
    assert (back.state, paid.state) == (DeductionState.FAILED, DeductionState.SUCCEEDED)
    assert package.state == PackageState.DONE and (package.succ_num, package.succ_amount_fen) == (1, paid.amount_fen)
    assert (tax.balance(back.pay_acct), tax.balance(paid.pay_acct)) == (1_000_00, 1_000_00 - paid.amount_fen)
    (sent,) = tips_outbox.sent
    assert sent.succ_num == 1
    assert list(TreasuryEntry.objects.values_list("amount_fen", flat=True)) == [paid.amount_fen]
    assert check_ledger().problems == []
