"""The transfer core end to end against the sandbox operator over real HTTP."""
import datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from adapters.ecny.client import get_operator_client
from adapters.ecny.interface import Conditions, OperatorUnavailable, RefusalCode
from tests import factories as f
from tests.treasury.conftest import open_wallet
from demo.world import make_resident_id
from treasury.errors import IdempotencyConflict, InvalidTransfers, TransferNotReversible
from treasury.models import LedgerAccount, LedgerEntry, Person, Transfer, TransferOutbox, TransferState, Wallet
from treasury.services import transfers as transfer_services
from treasury.services.ledger import check_ledger
from treasury.services.transfers import NewTransfer, create_transfers
from treasury.trace.models import TraceEvent

pytestmark = pytest.mark.django_db(transaction=True)


def states(ids):
    return [Transfer.objects.get(pk=i).state for i in ids]


def assert_ledger_ok():
    report = check_ledger()
    assert report.problems == []  # includes: the outbox holds exactly the open transfers


def test_transfers_settle_post_and_trace(world):
    start = world.operator_balance(world.payer)
    ids = world.pay([100_00, 250_50, 3_00])
    assert states(ids) == [TransferState.SETTLED] * 3
    assert world.operator_balance(world.payer) == start - 353_50
    assert world.operator_balance(world.payees[1]) == 250_50
    # Double entry: payer -amount, payee +amount, balances kept.
    entries = LedgerEntry.objects.filter(transfer_id=ids[1]).order_by("amount_fen")
    assert [(e.account.wallet_id, e.amount_fen) for e in entries] == [
        (world.payer.pk, -250_50), (world.payees[1].pk, 250_50)]
    world.payer.ledger_account.refresh_from_db()
    assert world.payer.ledger_account.balance_fen == -353_50
    assert_ledger_ok()
    t = Transfer.objects.get(pk=ids[0])
    assert t.operator_txn_id and t.settled_at and t.submit_attempts == 1
    kinds = list(TraceEvent.objects.filter(subject_type="treasury.transfer", subject_id=str(ids[0]))
                 .order_by("seq").values_list("kind", flat=True))
    assert kinds[:3] == ["transfer.created", "transfer.submitted", "transfer.settled"]
    assert "receipt.issued" in kinds


def test_transfers_created_claimed_are_sent_by_their_creator_with_one_event_less(world):
    """create_transfers(claimed=True): recorded submitted, no task queued, no claim, no transfer.submitted
    event; the creator sends them after commit; sending again, or creating the same keys again, changes nothing."""
    items = [NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[i].pk, amount_fen=amount,
                         idempotency_key=f"claimed:{i}", source_ref=f"claimed line {i + 1}")
             for i, amount in enumerate([120_00, 30_00])]
    with transaction.atomic():
        ids = create_transfers(organization_id=world.employer.pk, batch_ref="claimed", transfers=items,
                               actor="tester", now=timezone.now(), claimed=True)
    assert states(ids) == [TransferState.SUBMITTED] * 2  # nothing sent yet, and no task was queued
    assert all(t.submit_attempts == 1 and t.submitted_at for t in Transfer.objects.filter(pk__in=ids))
    assert world.operator_balance(world.payees[0]) == 0
    # A second submitter finds nothing to claim: only the creator sends them.
    assert transfer_services.submit_transfer_chunk(transfer_ids=ids, now=timezone.now()).claimed == 0

    outcome = transfer_services.send_claimed_transfers(transfer_ids=ids, now=timezone.now())
    assert (outcome.claimed, outcome.settled) == (2, 2)
    assert states(ids) == [TransferState.SETTLED] * 2
    assert transfer_services.send_claimed_transfers(transfer_ids=ids, now=timezone.now()).claimed == 0
    with transaction.atomic():
        assert create_transfers(organization_id=world.employer.pk, batch_ref="claimed", transfers=items,
                                actor="tester", now=timezone.now(), claimed=True) == ids
    assert world.operator_balance(world.payees[0]) == 120_00 and world.operator_balance(world.payees[1]) == 30_00
    events = list(TraceEvent.objects.filter(subject_type="treasury.transfer", subject_id=str(ids[0]))
                  .exclude(kind="receipt.issued").order_by("seq").values_list("kind", "data"))
    assert [kind for kind, _ in events] == ["transfer.created", "transfer.settled"]
    assert events[0][1]["submitted"] is True
    assert_ledger_ok()


def test_a_claimed_transfer_its_creator_never_sent_is_sent_after_recovery(world):
    with transaction.atomic():
        (transfer_id,) = create_transfers(
            organization_id=world.employer.pk, batch_ref="lost", actor="tester", now=timezone.now(), claimed=True,
            transfers=[NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[0].pk, amount_fen=5_00,
                                   idempotency_key="lost:0")])
    # The creator died here. Too young to be asked about, then the operator says it never saw the key:
    # back to pending and sent again under the same key (at once: Celery is eager in tests).
    assert transfer_services.recover_unconfirmed_transfers(now=timezone.now()) == {}
    later = timezone.now() + datetime.timedelta(seconds=3600)
    assert transfer_services.recover_unconfirmed_transfers(now=later)["requeued"] == 1
    assert states([transfer_id]) == [TransferState.SETTLED]
    assert world.operator_balance(world.payees[0]) == 5_00
    assert_ledger_ok()


def test_same_key_twice_makes_one_transfer(world):
    first = world.pay([500_00], batch_ref="b", key_prefix="same")
    second = world.pay([500_00], batch_ref="b", key_prefix="same")
    assert first == second
    assert Transfer.objects.filter(idempotency_key="same:0").count() == 1
    assert world.operator_balance(world.payees[0]) == 500_00


def test_same_key_for_a_different_payment_is_refused(world):
    world.pay([500_00], key_prefix="k")
    with pytest.raises(IdempotencyConflict):
        world.pay([600_00], key_prefix="k")


def test_every_bad_item_is_reported_and_nothing_written(world):
    items = [
        NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[0].pk, amount_fen=0, idempotency_key="x:1"),
        NewTransfer(payer_id=world.payer.pk, payee_id=world.payer.pk, amount_fen=1, idempotency_key="x:2"),
        NewTransfer(payer_id=world.payer.pk, payee_id=999999, amount_fen=1, idempotency_key="x:3"),
        NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[0].pk, amount_fen=1, idempotency_key="x:3"),
        NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[0].pk, amount_fen=1.5, idempotency_key="x:5"),
    ]
    with pytest.raises(InvalidTransfers) as caught:
        create_transfers(organization_id=world.employer.pk, batch_ref="bad", transfers=items, actor="t",
                         now=timezone.now())
    fields = [(index, field) for index, field, _ in caught.value.problems]
    assert fields == [(0, "amount_fen"), (1, "payee_id"), (2, "payee_id"), (3, "idempotency_key"), (4, "amount_fen")]
    assert Transfer.objects.count() == 0


def test_operator_refusals_fail_with_their_codes(world):
    person = Person.objects.create(name="匿名用户", resident_id=make_resident_id("370102", "19950101", 99))
    class4 = open_wallet(world.sandbox, operator=world.operator, number="0011000000000099", holder_person=person,
                         name=person.name, wallet_type=Wallet.Type.PERSONAL, wallet_class=4)
    world.sandbox.admin.set_status(wallet_id=world.payees[0].wallet_id, status="frozen")
    ids = world.pay([12_000_00], payees=[class4], batch_ref="cap")  # class 4 balance cap is 10,000 yuan
    ids += world.pay([1_00], payees=[world.payees[0]], batch_ref="frozen")
    earmark = Conditions(allowed_payees=(world.payees[1].wallet_id,), purposes=("SUBSIDY",))
    ids += world.pay([1_00], payees=[class4], batch_ref="earmark", conditions=earmark, purpose="SUBSIDY")
    rows = [Transfer.objects.get(pk=i) for i in ids]
    assert [(r.state, r.failure_code) for r in rows] == [
        (TransferState.FAILED, RefusalCode.BALANCE_CAP_EXCEEDED),
        (TransferState.FAILED, RefusalCode.WALLET_INACTIVE),
        (TransferState.FAILED, RefusalCode.CONDITION_PAYEE_NOT_ALLOWED),
    ]
    assert all(r.failure_message for r in rows)
    assert rows[2].conditions["allowed_payees"] == [world.payees[1].wallet_id]
    assert LedgerEntry.objects.count() == 0
    assert_ledger_ok()


def test_timeout_after_apply_is_recovered_and_paid_once(world):
    world.sandbox.admin.set_fault("timeout_after_apply", count=1, sleep_seconds=3)
    from django.conf import settings

    settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 1
    from adapters.ecny.client import get_operator_client

    get_operator_client.cache_clear()
    ids = world.pay([700_00, 800_00], batch_ref="timeout")
    assert states(ids) == [TransferState.UNKNOWN] * 2
    assert LedgerEntry.objects.count() == 0
    # The operator did apply it; recovery asks and records, once.
    result = transfer_services.recover_unconfirmed_transfers(now=timezone.now())
    assert result["settled"] == 2
    assert states(ids) == [TransferState.SETTLED] * 2
    assert world.operator_balance(world.payees[0]) == 700_00
    assert world.operator_balance(world.payees[1]) == 800_00
    # Running recovery again changes nothing.
    transfer_services.recover_unconfirmed_transfers(now=timezone.now())
    assert LedgerEntry.objects.count() == 4
    assert_ledger_ok()


def test_error_before_apply_is_sent_again_under_the_same_key(world):
    world.sandbox.admin.set_fault("error_before_apply", count=1)
    ids = world.pay([123_45], batch_ref="5xx")
    assert states(ids) == [TransferState.UNKNOWN]
    result = transfer_services.recover_unconfirmed_transfers(now=timezone.now())
    # The operator never saw the key: back to pending and sent again (eager Celery submits at once).
    assert result["requeued"] == 1
    t = Transfer.objects.get(pk=ids[0])
    assert t.state == TransferState.SETTLED and t.submit_attempts == 2
    assert world.operator_balance(world.payees[0]) == 123_45
    assert_ledger_ok()


def test_malformed_and_duplicate_replies(world):
    world.sandbox.admin.set_fault("malformed_reply", count=1)
    ids = world.pay([10_00], batch_ref="garbage")
    assert states(ids) == [TransferState.UNKNOWN]
    transfer_services.recover_unconfirmed_transfers(now=timezone.now())
    assert states(ids) == [TransferState.SETTLED]
    world.sandbox.admin.set_fault("duplicate_reply", count=1)
    ids = world.pay([20_00], batch_ref="dup")
    assert states(ids) == [TransferState.SETTLED]
    assert world.operator_balance(world.payees[0]) == 30_00
    assert_ledger_ok()


def test_chunk_task_delivered_twice_pays_once(world, monkeypatch):
    from treasury.tasks import submit_transfer_chunk_task

    queued = []
    monkeypatch.setattr(submit_transfer_chunk_task, "apply_async", lambda kwargs: queued.append(kwargs))
    ids = world.pay([1_00, 2_00, 3_00], batch_ref="twice")
    # One task per chunk; chunks end where trace partitions end, so three ids may make two.
    assert sorted(i for kwargs in queued for i in kwargs["transfer_ids"]) == sorted(ids)
    for kwargs in queued + queued:  # the broker delivers every task again
        submit_transfer_chunk_task.apply(kwargs=kwargs)
    outcome = transfer_services.submit_transfer_chunk(transfer_ids=ids, now=timezone.now())
    assert outcome.claimed == 0
    assert states(ids) == [TransferState.SETTLED] * 3
    assert [Transfer.objects.get(pk=i).submit_attempts for i in ids] == [1, 1, 1]
    assert_ledger_ok()


def test_worker_killed_after_the_operator_applied(world, worker_dies_after_operator_applies):
    """The worker dies between the operator's reply and our commit: nothing recorded, money moved."""
    with pytest.raises(KeyboardInterrupt):
        world.pay([42_00, 43_00], batch_ref="killed")
    worker_dies_after_operator_applies()  # the worker is back
    ids = list(Transfer.objects.filter(batch_ref="killed").order_by("pk").values_list("pk", flat=True))
    assert states(ids) == [TransferState.SUBMITTED] * 2
    # Too young: recovery leaves in-flight rows alone.
    assert transfer_services.recover_unconfirmed_transfers(now=timezone.now()).get("settled", 0) == 0
    later = timezone.now() + timezone.timedelta(minutes=5)
    assert transfer_services.recover_unconfirmed_transfers(now=later)["settled"] == 2
    assert world.operator_balance(world.payees[0]) == 42_00
    assert_ledger_ok()


def test_held_transfers_wait_for_release_and_can_be_cancelled(world):
    ids = world.pay([5_00, 6_00], batch_ref="held", hold=True)
    assert states(ids) == [TransferState.PENDING] * 2
    # The outbox sweeper does not pick up held transfers.
    later = timezone.now() + timezone.timedelta(minutes=5)
    assert transfer_services.submit_stranded_pending_transfers(now=later) == 0
    transfer_services.cancel_pending_transfers(transfer_ids=[ids[1]], reason="line held by employer", actor="t",
                                               now=timezone.now())
    transfer_services.release_transfers(transfer_ids=ids, actor="t", now=timezone.now())
    assert states(ids) == [TransferState.SETTLED, TransferState.CANCELLED]


def test_reversal_and_return_post_back(world):
    ids = world.pay([300_00, 400_00], batch_ref="back")
    transfer_services.reverse_transfer(transfer_id=ids[0], reason="duplicate tax payment", actor="t",
                                       now=timezone.now())
    # Reversing again is a no-op, not a second reversal.
    transfer_services.reverse_transfer(transfer_id=ids[0], reason="again", actor="t", now=timezone.now())
    world.sandbox.admin.return_transfer(request_id="back:1", reason="payee wallet closed")
    transfer_services.refresh_transfers(transfer_ids=ids, now=timezone.now())
    assert states(ids) == [TransferState.REVERSED, TransferState.RETURNED]
    assert world.operator_balance(world.payees[0]) == 0
    assert world.operator_balance(world.payees[1]) == 0
    world.payer.ledger_account.refresh_from_db()
    assert world.payer.ledger_account.balance_fen == 0
    assert_ledger_ok()
    with pytest.raises(TransferNotReversible):
        transfer_services.reverse_transfer(transfer_id=ids[1], reason="x", actor="t", now=timezone.now())


def reverse(transfer_id: int) -> Transfer:
    return transfer_services.reverse_transfer(transfer_id=transfer_id, reason="paid by mistake", actor="t",
                                              now=timezone.now())


def reversal_request_ids(wallet: Wallet) -> list[str]:
    """The request ids of the reversals the operator booked on the wallet today."""
    return [line.request_id for line in get_operator_client().statement(wallet.wallet_id, timezone.localdate())
            if line.kind == "reversal"]


def test_a_refused_reversal_is_asked_again_under_a_new_id_once_it_can_succeed(world):
    """The operator answers a request id it refused with the same refusal for ever: a later call asks a new
    reversal (`<key>:reversal:2`, ...), as callers retrying "next round" (tax) expect."""
    (paid,) = world.pay([300_00], batch_ref="to-reverse")
    # The payee spends most of it before the mistake is noticed.
    world.pay([250_00], batch_ref="spent", payer=world.payees[0], payees=[world.payees[1]])
    for _ in range(2):
        with pytest.raises(TransferNotReversible, match=RefusalCode.INSUFFICIENT_BALANCE):
            reverse(paid)
    world.sandbox.admin.fund(wallet_id=world.payees[0].wallet_id, amount_fen=300_00)  # the money is back

    assert reverse(paid).state == TransferState.REVERSED
    assert Transfer.objects.get(pk=paid).reversal_refusals == 2
    assert reversal_request_ids(world.payees[0]) == ["to-reverse:0:reversal:3"]
    assert world.operator_balance(world.payees[0]) == 50_00
    kinds = list(TraceEvent.objects.filter(subject_type="treasury.transfer", subject_id=str(paid))
                 .order_by("seq").values_list("kind", flat=True))
    assert kinds[-3:] == ["transfer.reversal_refused", "transfer.reversal_refused", "transfer.reversed"]
    assert_ledger_ok()


def test_a_reversal_whose_answer_was_lost_is_asked_again_under_its_id_and_applied_once(world, settings):
    """A timeout is not a refusal: the operator may have reversed it. The next call asks under the same id, and
    the operator answers with that reversal instead of applying another."""
    (paid,) = world.pay([300_00], batch_ref="lost-reversal")
    payer_before = world.operator_balance(world.payer)
    settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 1
    get_operator_client.cache_clear()
    world.sandbox.admin.set_fault("timeout_after_apply", count=1, sleep_seconds=3)
    with pytest.raises(OperatorUnavailable):
        reverse(paid)
    transfer = Transfer.objects.get(pk=paid)
    assert (transfer.state, transfer.reversal_refusals) == (TransferState.SETTLED, 0)
    assert world.operator_balance(world.payees[0]) == 0  # the operator did reverse it

    assert reverse(paid).state == TransferState.REVERSED
    assert reverse(paid).state == TransferState.REVERSED  # asked again: nothing more happens
    assert reversal_request_ids(world.payees[0]) == ["lost-reversal:0:reversal"]
    assert world.operator_balance(world.payer) == payer_before + 300_00
    assert LedgerEntry.objects.filter(transfer_id=paid, kind=LedgerEntry.Kind.REVERSAL).count() == 2
    assert_ledger_ok()


def test_ledger_check_command_names_what_is_wrong(world, capsys, ledger_tamper):
    ids = world.pay([100_00])
    call_command("ledger_check")
    assert "ledger OK" in capsys.readouterr().out
    LedgerAccount.objects.filter(wallet=world.payer).update(balance_fen=1)
    LedgerEntry.objects.filter(transfer_id=ids[0], amount_fen__gt=0).delete()
    TransferOutbox.objects.create(transfer_id=ids[0])  # a settled transfer left in the outbox
    with pytest.raises(CommandError, match="ledger check FAILED"):
        call_command("ledger_check")
    err = capsys.readouterr().err
    assert f"transfer {ids[0]}: settlement posting does not balance" in err
    assert "wallet:0010000000000011" in err
    assert f"transfer {ids[0]} is settled but is in the outbox" in err


def test_ledger_check_finds_entries_and_outbox_rows_naming_missing_rows(world, ledger_tamper):
    """Entries and outbox rows have no foreign-key constraints (treasury migration 0005): the check
    stands in for them."""
    ids = world.pay([100_00])
    account_id = world.payer.ledger_account.pk
    LedgerEntry.objects.create(transfer_id=999_999, account_id=account_id, kind="settlement", amount_fen=5,
                               posted_at=timezone.now())
    LedgerEntry.objects.create(transfer_id=ids[0], account_id=888_888, kind="return", amount_fen=-5,
                               posted_at=timezone.now())
    TransferOutbox.objects.create(transfer_id=777_777)
    problems = check_ledger().problems
    entries = dict(LedgerEntry.objects.filter(amount_fen__in=[5, -5]).values_list("amount_fen", "pk"))
    assert f"entry {entries[5]} names transfer 999999, which does not exist" in problems
    assert f"entry {entries[-5]} names account 888888, which does not exist" in problems
    assert "outbox row 777777 names transfer 777777, which does not exist" in problems


def test_ledger_check_finds_transfers_naming_missing_wallets_organizations_and_types(world):
    """Transfers name their wallets, organization and source type without foreign-key constraints
    (treasury migration 0009): the check stands in for them."""
    ids = world.pay([100_00, 200_00])
    Transfer.objects.filter(pk=ids[0]).update(payee_id=666_666, source_type_id=444_444)
    Transfer.objects.filter(pk=ids[1]).update(payer_id=666_667, organization_id=555_555)
    problems = check_ledger().problems
    assert f"transfer {ids[0]} names wallet 666666, which does not exist" in problems
    assert f"transfer {ids[0]} names content type 444444, which does not exist" in problems
    assert f"transfer {ids[1]} names wallet 666667, which does not exist" in problems
    assert f"transfer {ids[1]} names organization 555555, which does not exist" in problems


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the guarding triggers exist on PostgreSQL only")
def test_transfers_accounts_and_entries_are_kept_by_the_database(world):
    ids = world.pay([100_00])
    entry = LedgerEntry.objects.filter(transfer_id=ids[0]).first()
    # Raw SQL: the ORM's on_delete=PROTECT would refuse before the database is asked.
    for sql, params in (
        ("DELETE FROM treasury_transfer WHERE id = %s", [ids[0]]),
        ("DELETE FROM treasury_ledgeraccount WHERE id = %s", [entry.account_id]),
        ("DELETE FROM treasury_ledgerentry WHERE id = %s", [entry.pk]),
        ("UPDATE treasury_ledgerentry SET amount_fen = 1 WHERE id = %s", [entry.pk]),
    ):
        with pytest.raises(DatabaseError, match="not allowed"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    assert_ledger_ok()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the guarding triggers exist on PostgreSQL only")
def test_wallets_organizations_and_types_a_transfer_names_are_kept_by_the_database(world):
    from django.contrib.contenttypes.models import ContentType

    from treasury.models import Organization

    ids = world.pay([100_00])
    transfer = Transfer.objects.get(pk=ids[0])
    source_type = ContentType.objects.get_for_model(Organization)  # any type will do as a source here
    Transfer.objects.filter(pk=transfer.pk).update(source_type=source_type, source_id=1)
    # Raw SQL: the ORM's on_delete=PROTECT would refuse before the database is asked.
    for sql, params in (
        ("DELETE FROM treasury_wallet WHERE id = %s", [transfer.payer_id]),
        ("DELETE FROM treasury_wallet WHERE id = %s", [transfer.payee_id]),
        ("DELETE FROM treasury_organization WHERE id = %s", [transfer.organization_id]),
        ("DELETE FROM django_content_type WHERE id = %s", [source_type.pk]),
    ):
        with pytest.raises(DatabaseError, match="named by a transfer"), transaction.atomic(), \
                connection.cursor() as cursor:
            cursor.execute(sql, params)
    # A row no transfer names can still go.
    unused = f.make_organization()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM treasury_organization WHERE id = %s", [unused.pk])
    assert not Organization.objects.filter(pk=unused.pk).exists()
    assert_ledger_ok()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL planner setting")
def test_connections_tell_the_planner_random_reads_are_cheap():
    # Set on every connection (config/settings.py): with PostgreSQL's default of 4 the bulk paths'
    # chunk updates by id were planned as hash joins over the whole table.
    with connection.cursor() as cursor:
        cursor.execute("SHOW random_page_cost")
        assert cursor.fetchone()[0] == "1.1"


def test_domain_facing_wallet_checks_and_balance(world):
    from treasury.services.wallets import operator_balance, verify_wallets

    world.sandbox.admin.set_status(wallet_id=world.payees[1].wallet_id, status="frozen")
    checks = verify_wallets(pairs=[(world.payees[0].wallet_id, world.payees[0].holder_name),
                                   (world.payees[1].wallet_id, world.payees[1].holder_name),
                                   (world.payees[2].wallet_id, "someone else"),
                                   ("0019999999999999", "nobody")])
    assert [(c.exists, c.active, c.holder_name_matches) for c in checks] == [
        (True, True, True), (True, False, True), (True, True, False), (False, False, False)]
    before = operator_balance(wallet=world.payer)
    world.pay([12_34])
    assert before.balance_fen - operator_balance(wallet=world.payer).balance_fen == 12_34
    assert before.status == "active" and before.as_of.tzinfo is not None



def test_personal_wallets_registered_from_known_checks_are_not_verified_again(world, monkeypatch):
    from adapters.ecny.interface import WalletCheck
    from treasury.services import wallets as wallet_services

    known_id, asked_id = "0010000000000901", "0010000000000902"
    world.sandbox.admin.open_wallet(wallet_id=asked_id, wallet_type="WT01", holder_name="王五", wallet_class=3)
    asked = []
    verify = wallet_services.verify_wallets
    monkeypatch.setattr(wallet_services, "verify_wallets", lambda *, pairs: asked.extend(pairs) or verify(pairs=pairs))
    known = {known_id: WalletCheck(wallet_id=known_id, exists=True, active=True, holder_name_matches=True,
                                   wallet_type="WT01", wallet_class=2)}
    pks = wallet_services.ensure_personal_wallets(
        holders=[(known_id, "赵六", make_resident_id("370102", "19800101", 11)), (asked_id, "王五", make_resident_id("370102", "19800101", 12))], known_checks=known)
    assert asked == [(asked_id, "王五")]  # only the wallet the caller knew nothing of
    registered = {w.wallet_id: w for w in Wallet.objects.filter(pk__in=pks.values())}
    assert (registered[known_id].wallet_type, registered[known_id].wallet_class) == ("WT01", 2)
    assert (registered[asked_id].wallet_type, registered[asked_id].wallet_class) == ("WT01", 3)
    assert registered[known_id].ledger_account.code == f"wallet:{known_id}"
    # Registered once: asking again finds them in the table and asks the operator nothing.
    assert wallet_services.ensure_personal_wallets(holders=[(known_id, "赵六", "x"), (asked_id, "王五", "y")]) == pks
    assert asked == [(asked_id, "王五")]


def test_without_enqueue_the_caller_submits_and_nothing_else_does(world):
    """A real-time caller (a tax deduction answered in the same call) creates without queueing a task,
    then submits the transfer itself: it stays pending until then and is paid once."""
    from django.db import transaction

    with transaction.atomic():
        (transfer_id,) = create_transfers(
            organization_id=world.employer.pk, batch_ref="realtime", actor="t", now=timezone.now(), enqueue=False,
            transfers=[NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[0].pk, amount_fen=12_34,
                                   idempotency_key="realtime:1")])
    assert states([transfer_id]) == [TransferState.PENDING]  # no task ran at commit (Celery is eager here)
    outcome = transfer_services.submit_transfer_chunk(transfer_ids=[transfer_id], now=timezone.now())
    assert outcome.settled == 1
    assert world.operator_balance(world.payees[0]) == 12_34
    assert_ledger_ok()


def test_submission_chunks_end_where_trace_partitions_end():
    """Chunks of at most the chunk size, never sharing a trace stream with a neighbour."""
    size = transfer_services.TRACE_PARTITION_SIZE
    ids = list(range(size + 1, 4 * size + 501))
    chunks = transfer_services.submission_chunks(list(reversed(ids)), size)
    assert [len(c) for c in chunks] == [size - 1, size, size, 501]
    assert [i for c in chunks for i in c] == ids
    assert all(len({i // size for i in c}) == 1 for c in chunks)
    # Chunks larger than a partition hold whole partitions; smaller ones never cross one.
    assert [len(c) for c in transfer_services.submission_chunks(ids, 2 * size)] == [size - 1, 2 * size, 501]
    halves = transfer_services.submission_chunks(ids, size // 2)
    assert max(len(c) for c in halves) == size // 2
    assert all(len({i // size for i in c}) == 1 for c in halves)
    assert transfer_services.submission_chunks([], size) == []


def test_ledger_check_finds_postings_on_the_wrong_wallets_or_the_wrong_way(world, ledger_tamper):
    """Entries that balance, each of the transfer's amount, with balances kept to match, can still move money
    between the wrong wallets or the wrong way: the check names them."""
    ids = world.pay([100_00, 200_00])
    payer_account = world.payer.ledger_account
    first_payee_account = LedgerAccount.objects.get(wallet=world.payees[0])
    other_account = LedgerAccount.objects.get(wallet=world.payees[4])
    assert_ledger_ok()
    # The first transfer's money went the wrong way: the payee debited, the payer credited.
    first = {e.account_id: e for e in LedgerEntry.objects.filter(transfer_id=ids[0])}
    LedgerEntry.objects.filter(pk=first[payer_account.pk].pk).update(amount_fen=100_00)
    LedgerEntry.objects.filter(pk=first[first_payee_account.pk].pk).update(amount_fen=-100_00)
    # The second transfer's credit landed in another person's wallet.
    second_payee_account = LedgerAccount.objects.get(wallet=Transfer.objects.get(pk=ids[1]).payee)
    LedgerEntry.objects.filter(transfer_id=ids[1], account=second_payee_account).update(account=other_account)
    for account in LedgerAccount.objects.all():  # balances kept equal to their entries
        account.balance_fen = sum(LedgerEntry.objects.filter(account=account).values_list("amount_fen", flat=True))
        LedgerAccount.objects.filter(pk=account.pk).update(balance_fen=account.balance_fen)
    problems = check_ledger().problems
    assert any(p.startswith(f"transfer {ids[0]}: settlement entry") for p in problems), problems
    assert any(p.startswith(f"transfer {ids[1]}: settlement entry") for p in problems), problems


def test_a_key_longer_than_the_operator_takes_is_refused_at_creation_not_by_failing_its_whole_chunk(world):
    """The operator takes request ids of at most 64 characters and refuses a batch with a longer one as a whole:
    such a key is a bad item when the transfer is made, and the chunk's other transfers are not failed by it."""
    good = NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[0].pk, amount_fen=1_00, idempotency_key="ok:1")
    longest = NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[1].pk, amount_fen=2_00,
                          idempotency_key="k" * 64)
    too_long = NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[2].pk, amount_fen=3_00,
                           idempotency_key="k" * 65)
    with pytest.raises(InvalidTransfers) as caught:
        create_transfers(organization_id=world.employer.pk, batch_ref="long", transfers=[good, too_long], actor="t",
                         now=timezone.now())
    assert [(index, field) for index, field, _ in caught.value.problems] == [(1, "idempotency_key")]
    assert Transfer.objects.count() == 0
    ids = create_transfers(organization_id=world.employer.pk, batch_ref="long", transfers=[good, longest], actor="t",
                           now=timezone.now())
    assert states(ids) == [TransferState.SETTLED, TransferState.SETTLED]
    assert_ledger_ok()


def test_a_transfer_whose_key_takes_the_whole_request_id_can_be_reversed(world):
    """A reversal's request id is made from the transfer's key; with a long key it must still be one the
    operator takes (at most 64 characters), at each attempt, and stay the same for the same attempt."""
    (paid,) = create_transfers(
        organization_id=world.employer.pk, batch_ref="long", actor="t", now=timezone.now(),
        transfers=[NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[0].pk, amount_fen=5_00,
                               idempotency_key="r" * 60)])
    assert states([paid]) == [TransferState.SETTLED]
    transfer = transfer_services.reverse_transfer(transfer_id=paid, reason="wrong payee", actor="t", now=timezone.now())
    assert transfer.state == TransferState.REVERSED
    assert world.operator_balance(world.payees[0]) == 0
    ids = [transfer_services._reversal_request_id(idempotency_key="r" * 64, attempt=n) for n in (1, 2, 1)]
    assert all(len(i) <= 64 for i in ids) and ids[0] == ids[2] != ids[1]
    assert_ledger_ok()


def test_conditions_with_a_spend_by_time_without_offset_are_a_bad_item(world):
    """The operator protocol needs a spend-by time with its UTC offset: a naive one could never be sent (each
    attempt raised while building the chunk's request, leaving it and every other transfer of its chunk claimed and
    undecided, asked again and resent for ever). It is refused with the other bad items, nothing written."""
    naive = Conditions(purposes=("SALARY",), expires_at=datetime.datetime(2099, 1, 1, 12, 0))
    items = [
        NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[0].pk, amount_fen=1_00, idempotency_key="n:1"),
        NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[1].pk, amount_fen=2_00, idempotency_key="n:2",
                    purpose_code="SALARY", conditions=naive),
    ]
    with pytest.raises(InvalidTransfers) as caught:
        create_transfers(organization_id=world.employer.pk, batch_ref="naive", transfers=items, actor="t",
                         now=timezone.now())
    assert [(index, field) for index, field, _ in caught.value.problems] == [(1, "conditions")]
    assert Transfer.objects.count() == 0


def test_an_amount_past_what_a_bigint_holds_is_a_bad_item(world):
    """Amounts are stored as 64-bit integers (and sent so): a larger one is named with the other bad items and
    nothing written, not a database or encoding error once the transfers are being written or sent."""
    items = [
        NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[0].pk, amount_fen=1_00, idempotency_key="big:1"),
        NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[1].pk, amount_fen=2 ** 63, idempotency_key="big:2"),
    ]
    with pytest.raises(InvalidTransfers) as caught:
        create_transfers(organization_id=world.employer.pk, batch_ref="big", transfers=items, actor="t",
                         now=timezone.now())
    assert [(index, field) for index, field, _ in caught.value.problems] == [(1, "amount_fen")]
    assert Transfer.objects.count() == 0


def test_a_never_seen_answer_asked_before_a_newer_send_does_not_take_that_send_back(world, monkeypatch):
    """Recovery asks about a claimed transfer its creator never sent: the operator has not seen the key. Before that
    answer is recorded, another recovery's requeue had it claimed and sent again, and that send is in flight. The
    stale answer must not put it back to pending: there it could be cancelled (nothing sent, says the core) while
    the operator applies the send in flight, and its answer is ignored: money moved under a cancelled transfer."""
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    with transaction.atomic():
        (transfer_id,) = create_transfers(
            organization_id=world.employer.pk, batch_ref="stale", actor="tester", now=long_ago, claimed=True,
            transfers=[NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[0].pk, amount_fen=7_00,
                                   idempotency_key="stale:0")])
    operator = get_operator_client()
    in_flight = {}

    class Interleaved:
        def query(self, keys):
            answers = operator.query(keys)  # NOT_FOUND: the key was never sent
            # Meanwhile another recovery requeued it and a worker claimed and sent it; its reply is not back yet.
            Transfer.objects.filter(pk=transfer_id).update(state=TransferState.PENDING)
            with transaction.atomic():
                claimed = transfer_services._claim([transfer_id], timezone.now())
            in_flight["results"] = operator.transfer_batch([
                transfer_services.TransferInstruction(request_id=c[1], payer_wallet=world.payer.wallet_id,
                                                      payee_wallet=world.payees[0].wallet_id, amount_fen=c[2])
                for c in claimed])
            return answers

    monkeypatch.setattr(transfer_services, "_operator", lambda: Interleaved())
    monkeypatch.setattr(transfer_services, "enqueue_submission", lambda ids: None)  # queued, not run yet
    recovery_started = timezone.now() - datetime.timedelta(seconds=1)
    transfer_services.recover_unconfirmed_transfers(now=recovery_started, older_than_seconds=0)
    transfer_services.cancel_pending_transfers(transfer_ids=[transfer_id], reason="not sent", actor="t",
                                               now=timezone.now())
    transfer_services.apply_operator_results(results=in_flight["results"], now=timezone.now())
    assert world.operator_balance(world.payees[0]) == 7_00
    assert states([transfer_id]) == [TransferState.SETTLED]
    assert_ledger_ok()
