"""The batch path's fast shapes keep its promises: the package task sends its own transfers and a run
killed before sending leaves nothing behind, a package is debited once however many runs and sweeps
meet it, the sweep leaves a fresh package to its task and costs a few queries when idle, and items
refused and debited in one chunk each get their own result."""
import datetime as dt
import threading

import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from adapters.tips.interface import ResultCode
from tax import services
from tax.handlers import TaxHandler
from tax.models import DeductionPackage, DeductionState, PackageState, TaxDeduction, TreasuryEntry
from tests.tax.helpers import batch, item
from treasury.models import Transfer, TransferState
from treasury.services import transfers as transfer_services
from treasury.services.ledger import check_ledger


def funded_package(tax, n: int, *, unsigned: int = 0):
    payers = [tax.taxpayer(balance_fen=1_000_00) for _ in range(n)]
    items = [item(payer=p, protocol_no=tax.signed_and_verified(p).protocol_no, amount_fen=10_00 + i)
             for i, p in enumerate(payers)]
    stranger = tax.taxpayer(balance_fen=1_000_00)
    items += [item(payer=stranger, protocol_no="NO-AGREEMENT", amount_fen=5_00) for _ in range(unsigned)]
    return payers, stranger, batch(tax, items)


def not_processed(monkeypatch):
    """Received, but its task never ran (the broker lost it, or the worker died before it started)."""
    monkeypatch.setattr(services, "_enqueue_process", lambda package_id: None)


def test_refused_and_debited_items_of_one_chunk_get_their_own_results(tax, tips_outbox, settings):
    settings.TAX_BATCH_CHUNK_SIZE = 4
    payers, stranger, message = funded_package(tax, 5, unsigned=2)
    TaxHandler().receive_batch(message)

    package = DeductionPackage.objects.get()
    assert package.state == PackageState.DONE and (package.succ_num, package.all_num) == (5, 7)
    items = list(TaxDeduction.objects.filter(package=package).order_by("pk"))
    assert [d.tra_no for d in items] == [i.tra_no for i in message.items]
    for d, sent in zip(items[:5], message.items[:5]):
        assert (d.state, d.result_code, d.tax_date) == (DeductionState.SUCCEEDED, ResultCode.SUCCESS,
                                                        timezone.localdate())
        assert d.agreement.protocol_no == sent.protocol_no and d.transfer.source_id == d.pk
        assert d.transfer.idempotency_key == d.idempotency_key and d.decided_at is not None
        assert d.tax_types == [{"project_id": "101010", "tax_type_name": "增值税", "tax_start_date": "2026-10-01",
                                "tax_end_date": "2026-10-31", "amount_fen": sent.amount_fen}]
        assert d.tax_types == services._tax_types_json(sent)  # the bulk path stores what a single deduction does
    for d in items[5:]:
        assert (d.state, d.result_code, d.agreement_id, d.transfer_id) == (
            DeductionState.FAILED, ResultCode.NOT_SIGNED, None, None)
        assert d.decided_at is not None and d.tax_date is None
    entries = TreasuryEntry.objects.order_by("deduction_id")
    assert [(e.deduction_id, e.amount_fen, e.central_fen + e.local_fen) for e in entries] == [
        (d.pk, d.amount_fen, d.amount_fen) for d in items[:5]]
    assert [line.result for line in tips_outbox.sent[0].items] == [ResultCode.SUCCESS] * 5 + [ResultCode.NOT_SIGNED] * 2
    assert services.process_package(package_id=package.pk, now=timezone.now()) == {}
    assert check_ledger().problems == []


def test_a_run_killed_before_sending_leaves_its_transfers_to_the_next_run(tax, tips_outbox, monkeypatch):
    payers, _, message = funded_package(tax, 3)
    not_processed(monkeypatch)
    services.receive_batch(message=message, now=timezone.now())
    package = DeductionPackage.objects.get()

    def killed(**kwargs):
        raise SystemExit("worker killed")

    with monkeypatch.context() as m:
        m.setattr(transfer_services, "send_claimed_transfers", killed)
        with pytest.raises(SystemExit):
            services.process_package(package_id=package.pk, now=timezone.now())
    # Created claimed by the killed run: submitted, never sent.
    assert set(Transfer.objects.values_list("state", flat=True)) == {TransferState.SUBMITTED}
    assert set(TaxDeduction.objects.values_list("state", flat=True)) == {DeductionState.DEDUCTING}
    assert services.finish_packages(now=timezone.now()) == {}  # nothing decided yet, nothing to resume
    # Too young for recovery: still theirs to send.
    assert transfer_services.recover_unconfirmed_transfers(now=timezone.now()) == {}
    later = timezone.now() + dt.timedelta(seconds=settings.TRANSFER_RECOVERY_AFTER_SECONDS + 1)
    # The operator never saw them: back to pending and sent again by the core (at once here: Celery is eager).
    assert transfer_services.recover_unconfirmed_transfers(now=later)["requeued"] == 3

    assert services.process_package(package_id=package.pk, now=timezone.now()) == {}  # finishes the package
    package.refresh_from_db()
    assert package.state == PackageState.DONE and package.succ_num == 3
    assert Transfer.objects.filter(state=TransferState.SETTLED).count() == 3
    for payer, sent in zip(payers, message.items):
        assert tax.balance(payer.wallet_id) == 1_000_00 - sent.amount_fen
    assert check_ledger().problems == []


def test_the_sweep_leaves_a_fresh_package_to_its_task_and_resumes_an_old_one(tax, tips_outbox, monkeypatch):
    payers, _, message = funded_package(tax, 2)
    not_processed(monkeypatch)
    received_at = timezone.now()
    services.receive_batch(message=message, now=received_at)
    package = DeductionPackage.objects.get()

    assert services.finish_packages(now=received_at + dt.timedelta(seconds=59)) == {}
    assert DeductionPackage.objects.get().state == PackageState.RECEIVED
    assert services.finish_packages(now=received_at + dt.timedelta(seconds=61)) == {"processed": 1}
    package.refresh_from_db()
    assert package.state == PackageState.DONE and package.result_acknowledged and len(tips_outbox.sent) == 1
    assert Transfer.objects.count() == 2


def test_an_idle_sweep_costs_a_few_queries_however_many_packages(tax, tips_outbox, django_assert_max_num_queries):
    for _ in range(3):
        _, _, message = funded_package(tax, 2)
        services.receive_batch(message=message, now=timezone.now())
    assert DeductionPackage.objects.filter(state=PackageState.DONE, result_acknowledged=True).count() == 3
    with django_assert_max_num_queries(3):
        assert services.finish_packages(now=timezone.now()) == {}


def test_a_late_decision_is_picked_up_by_the_sweep_alone(tax, tips_outbox, settings):
    """An item whose transfer the operator decides later (after recovery) is decided by the sweep; the
    items already decided are not read or written again."""
    payers, _, message = funded_package(tax, 2)
    settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 0.5
    from adapters.ecny.client import get_operator_client

    get_operator_client.cache_clear()
    tax.ecny.admin.set_fault("timeout_after_apply", count=1, sleep_seconds=1.5)
    services.receive_batch(message=message, now=timezone.now())
    package = DeductionPackage.objects.get()
    assert package.state == PackageState.DEDUCTING
    assert set(Transfer.objects.values_list("state", flat=True)) == {TransferState.UNKNOWN}
    assert services.finish_packages(now=timezone.now()) == {}  # nothing decided: the package is not touched

    transfer_services.recover_unconfirmed_transfers(now=timezone.now())
    assert services.finish_packages(now=timezone.now()) == {"finished": 1}  # its result is sent after commit
    package.refresh_from_db()
    assert package.state == PackageState.DONE and package.succ_num == 2 and package.result_acknowledged
    assert TreasuryEntry.objects.count() == 2
    assert check_ledger().problems == []


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_runs_and_a_sweep_at_once_debit_each_item_once(tax, tips_outbox, monkeypatch, settings):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks: run with DATABASE_URL=postgres://... (see .ci/run)")
    settings.TAX_BATCH_CHUNK_SIZE = 3
    payers, _, message = funded_package(tax, 8)
    not_processed(monkeypatch)
    received_at = timezone.now() - dt.timedelta(minutes=5)
    services.receive_batch(message=message, now=received_at)
    package = DeductionPackage.objects.get()

    barrier = threading.Barrier(3)
    errors = []

    def run(call):
        try:
            barrier.wait()
            call()
        except Exception as error:  # noqa: BLE001 - the test looks at what went wrong
            errors.append(error)
        finally:
            connections.close_all()

    calls = [lambda: services.process_package(package_id=package.pk, now=timezone.now()),
             lambda: services.process_package(package_id=package.pk, now=timezone.now()),
             lambda: services.finish_packages(now=timezone.now())]
    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    services.finish_packages(now=timezone.now())

    package.refresh_from_db()
    assert package.state == PackageState.DONE and package.succ_num == 8
    assert Transfer.objects.count() == 8 and Transfer.objects.filter(state=TransferState.SETTLED).count() == 8
    for payer, sent in zip(payers, message.items):
        assert tax.balance(payer.wallet_id) == 1_000_00 - sent.amount_fen
    assert TreasuryEntry.objects.count() == 8
    # The sweep may send the result while the task's own send is on its way (no lock is held while
    # sending): always the same package and result, which the tax system takes once.
    assert package.result_acknowledged
    assert {(r.ori_pack_no, r.succ_num, r.succ_amount_fen) for r in tips_outbox.sent} == {
        (message.pack_no, 8, message.all_amount_fen)}
    assert check_ledger().problems == []


def test_a_serial_used_before_is_found_whatever_characters_it_holds(tax, tips_outbox):
    payer = tax.taxpayer(balance_fen=1_000_00)
    protocol_no = tax.signed_and_verified(payer).protocol_no
    odd = 'a"b\\c,{d} e'
    first = services.receive_batch(message=batch(tax, [item(payer=payer, protocol_no=protocol_no, amount_fen=1_00,
                                                              tra_no=odd)]), now=timezone.now())
    assert first.result == ResultCode.SUCCESS
    again = batch(tax, [item(payer=payer, protocol_no=protocol_no, amount_fen=2_00),
                        item(payer=payer, protocol_no=protocol_no, amount_fen=3_00, tra_no=odd)])
    ack = services.receive_batch(message=again, now=timezone.now())
    assert ack.result == services.PACKAGE_REFUSED and "used before" in ack.add_word
    assert TaxDeduction.objects.filter(tra_no=odd).count() == 1 and DeductionPackage.objects.count() == 1


def test_a_result_the_tax_system_never_takes_is_resent_less_and_less_often(tax, tips_outbox):
    payer = tax.taxpayer(balance_fen=1_000_00)
    protocol_no = tax.signed_and_verified(payer).protocol_no
    tips_outbox.fail_next = 100
    services.receive_batch(message=batch(tax, [item(payer=payer, protocol_no=protocol_no, amount_fen=1_00)]),
                           now=timezone.now())
    sent_at = timezone.now()
    DeductionPackage.objects.update(result_attempts=9, result_sent_at=sent_at)  # down for a long time
    assert services.finish_packages(now=sent_at + dt.timedelta(seconds=599)) == {}
    assert len(tips_outbox.sent) == 1
    services.finish_packages(now=sent_at + dt.timedelta(seconds=601))  # at most every 10 minutes
    assert len(tips_outbox.sent) == 2
    package = DeductionPackage.objects.get()
    assert package.result_pending and package.result_attempts == 10 and "unreachable" in package.result_error


@pytest.mark.integration
def test_an_items_two_updates_are_made_in_place(tax, tips_outbox):
    """No index names what deducting and deciding an item change, and the table's pages keep room
    (tax 0008): PostgreSQL makes both updates in place (HOT), writing no index entry."""
    if connection.vendor != "postgresql":
        pytest.skip("HOT updates are PostgreSQL's: run with DATABASE_URL=postgres://... (see .ci/run)")

    def updates() -> tuple[int, int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")  # this backend's counts, flushed when it idles
            cursor.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = %s",
                           [TaxDeduction._meta.db_table])
            return cursor.fetchone()

    _, _, message = funded_package(tax, 20)
    before = updates()
    TaxHandler().receive_batch(message)
    after = updates()

    assert DeductionPackage.objects.get().succ_num == 20
    updated, in_place = after[0] - before[0], after[1] - before[1]
    assert updated >= 40 and in_place == updated


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the guarding triggers exist on PostgreSQL only")
def test_what_deductions_and_entries_name_is_kept_by_the_database(tax, tips_outbox):
    """Deductions name their package, agreement and transfer, and treasury entries their deduction, without
    foreign-key constraints (tax 0012); the database still refuses to delete any row so named."""
    from django.db import DatabaseError, transaction

    _, _, message = funded_package(tax, 1)
    TaxHandler().receive_batch(message)
    deduction = TaxDeduction.objects.get()
    assert deduction.state == DeductionState.SUCCEEDED and TreasuryEntry.objects.filter(deduction=deduction).exists()
    # Raw SQL: the ORM's on_delete=PROTECT would refuse before the database is asked.
    for sql, params, named_by in (
        ("DELETE FROM tax_deductionpackage WHERE id = %s", [deduction.package_id], "tax_taxdeduction"),
        ("DELETE FROM tax_taxagreement WHERE id = %s", [deduction.agreement_id], "tax_taxdeduction"),
        ("DELETE FROM tax_taxdeduction WHERE id = %s", [deduction.pk], "tax_treasuryentry"),
        ("DELETE FROM treasury_transfer WHERE id = %s", [deduction.transfer_id], ""),
    ):
        with pytest.raises(DatabaseError, match=f"{named_by}.*not allowed" if named_by else "not allowed"), \
                transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    # An agreement no deduction names can still go.
    unused = tax.signed_and_verified(tax.taxpayer(balance_fen=0))
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM tax_taxagreement WHERE id = %s", [unused.pk])
    assert not type(unused).objects.filter(pk=unused.pk).exists()


def test_the_agreement_is_checked_when_an_item_is_deducted_not_when_it_was_received(tax, tips_outbox, monkeypatch):
    """An item names its agreement from receipt on (read with the item when it is deducted); what counts is
    the agreement's state at deduction: one signed after the package came is used, one suspended since is not."""
    from tests.tax.helpers import verification

    not_processed(monkeypatch)
    late_payer, suspended_payer = tax.taxpayer(balance_fen=1_000_00), tax.taxpayer(balance_fen=1_000_00)
    suspended = tax.signed_and_verified(suspended_payer)
    message = batch(tax, [item(payer=late_payer, protocol_no="PLATE0001", amount_fen=10_00),
                          item(payer=suspended_payer, protocol_no=suspended.protocol_no, amount_fen=20_00)])
    TaxHandler().receive_batch(message)
    late_item, suspended_item = TaxDeduction.objects.order_by("pk")
    assert (late_item.agreement_id, suspended_item.agreement_id) == (None, suspended.pk)

    late = tax.sign(late_payer, protocol_no="PLATE0001")
    assert services.handle_agreement_verification(message=verification(late), now=timezone.now()).vc_result == "0"
    services.suspend_agreement(agreement_id=suspended.pk, user=tax.staff, reason="纳税人申请暂停", now=timezone.now())
    services.process_package(package_id=DeductionPackage.objects.get().pk, now=timezone.now())

    late_item.refresh_from_db()
    suspended_item.refresh_from_db()
    assert (late_item.state, late_item.agreement_id) == (DeductionState.SUCCEEDED, late.pk)
    assert (suspended_item.state, suspended_item.result_code) == (DeductionState.FAILED, ResultCode.NOT_SIGNED)
    assert tax.balance(late_payer.wallet_id) == 990_00 and tax.balance(suspended_payer.wallet_id) == 1_000_00
