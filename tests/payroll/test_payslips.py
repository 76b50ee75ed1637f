"""Payslips: the page's text (pypdf), the batch zip, the employer's batch receipt.

Most tests build a batch with the ORM (lines and transfers in the states wanted); one runs a real
batch through the services against the sandbox operator, with a wallet frozen before paying.
"""
import io
import zipfile
from datetime import datetime, timedelta, timezone

import pypdf
import pytest
from django.utils import timezone as dj_timezone

from payroll import payslips
from payroll import services as payroll_services
from payroll.models import BatchState, PayrollBatch, PayrollLine
from payroll.services import PayrollError
from tests import factories as f
from tests.payroll import builders
from tests.payroll.helpers import staff, upload
from treasury.access import roles
from treasury.models import TransferState
from treasury.money import fen_to_capitals, format_yuan
from treasury.receipts.models import Receipt
from treasury.receipts.services import receipt_file

NOW = datetime(2025, 7, 10, 1, 0, tzinfo=timezone.utc)  # 09:00 in Shanghai
SETTLED_AT = datetime(2025, 7, 9, 16, 30, 5, tzinfo=timezone.utc)  # 00:30:05 on 10 July in Shanghai

COMPONENTS = {"basic_wage": 800_001, "allowances": 50_000, "subsidies": 30_099, "bonus": 1, "other_pay": 0}
DEDUCTIONS = {"social_insurance": 64_000, "housing_fund": 96_012, "income_tax": 2_545, "union_dues": 4_000,
              "other_deductions": 0}
GROSS = sum(COMPONENTS.values())  # 880,101 fen
NET = GROSS - sum(DEDUCTIONS.values())  # 713,544 fen


def text_of(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


class Payroll:
    """An employer's batch for 2025-06 made with the ORM; lines are added with their transfer's state."""

    def __init__(self):
        self.employer = f.make_organization(name="示范市第一中学")
        self.payer = f.make_wallet(holder_org=self.employer)
        self.clerk = f.make_user(role=roles.EMPLOYER_OPERATOR, organization=self.employer)
        self.batch = PayrollBatch.objects.create(
            employer=self.employer, payer_wallet=self.payer, period="2025-06", filename="工资.csv",
            file_format="csv", file_sha256=f"{f._next():064d}", upload_path="payroll/uploads/x.csv",
            state=BatchState.PAYING, prepared_by=self.clerk, created_at=NOW - timedelta(days=1),
        )
        self.line_no = 6  # data starts under the header block, as in a real file

    def line(self, *, state: str | None = TransferState.SETTLED, name="欧阳晓明", components=COMPONENTS,
             deductions=DEDUCTIONS, held=False, hold_reason="", **transfer_fields) -> PayrollLine:
        self.line_no += 1
        i = self.line_no
        net = sum(components.values()) - sum(deductions.values())
        resident_id = builders.resident_id(i)
        payee = f.make_wallet(holder_person=f.make_person(name=name, resident_id=resident_id))
        transfer = None
        if state is not None:
            done = state not in (TransferState.PENDING, TransferState.SUBMITTED, TransferState.UNKNOWN)
            transfer = f.make_transfer(
                state=state, payer=self.payer, payee=payee, amount_fen=net, batch_ref=self.batch.batch_ref,
                idempotency_key=f"payroll:{self.batch.pk}:{i}", created_at=NOW - timedelta(hours=9),
                operator_txn_id=transfer_fields.pop("operator_txn_id", f"OP2025070900{i:06d}"),
                settled_at=SETTLED_AT if state == TransferState.SETTLED else None,
                finished_at=SETTLED_AT if done else None, **transfer_fields,
            )
        return PayrollLine.objects.create(
            batch=self.batch, line_no=i, employee_no=f"E{i:05d}", name=name, resident_id=resident_id,
            wallet_id=payee.wallet_id, components=dict(components), deductions=dict(deductions),
            gross_fen=sum(components.values()), net_fen=net, held=held, hold_reason=hold_reason,
            transfer=transfer,
        )


@pytest.fixture
def payroll(db):
    return Payroll()


def test_payslip_shows_every_amount_to_the_fen_capitals_and_masked_identifiers(payroll):
    line = payroll.line()
    text = text_of(payslips.payslip_pdf(line=line, now=NOW))
    expected = [
        "工资条", "Payslip", "示范市第一中学", "2025-06", line.employee_no, "欧阳晓明",
        # every component and deduction, to the fen, beside its label
        "基本工资", "¥8,000.01", "津贴", "¥500.00", "补贴", "¥300.99", "奖金", "¥0.01", "其他应发",
        "个人社会保险", "¥640.00", "住房公积金", "¥960.12", "个人所得税", "¥25.45", "工会会费", "¥40.00", "其他扣款",
        "应发合计", "¥8,801.01", "扣除合计", "¥1,665.57",
        "实发金额", "¥7,135.44", "人民币柒仟壹佰叁拾伍元肆角肆分",
        "已到账", "2025-07-10 00:30:05", str(line.transfer_id), line.transfer.operator_txn_id,
        "生成时间", "2025-07-10 09:00:00",
        "Basic wage", "Gross pay", "Net pay", "Individual income tax",
    ]
    for item in expected:
        assert item in text, item
    assert NET == 713_544 and format_yuan(NET) == "¥7,135.44"
    assert fen_to_capitals(NET) == "柒仟壹佰叁拾伍元肆角肆分"
    # Identifiers are masked: the masked forms are there, the full ones are not.
    assert line.resident_id[:3] + "*" * 11 + line.resident_id[-4:] in text
    assert line.wallet_id[:4] + "********" + line.wallet_id[-4:] in text
    assert line.resident_id not in text and line.wallet_id not in text


def test_payslip_names_its_transfer_receipt_once_issued(payroll):
    line = payroll.line()
    Receipt.objects.create(
        number="R202507100000000042", kind=Receipt.Kind.TRANSFER, transfer=line.transfer,
        batch_ref=payroll.batch.batch_ref, organization=payroll.employer, payload={}, payload_sha256="0" * 64,
        signature="s", key_id="k", verification_code="ABCDEFGHJK", file_path="receipts/x.pdf",
        pdf_sha256="0" * 64, pdf_size=1, issued_at=NOW,
    )
    line = PayrollLine.objects.select_related("batch__employer", "transfer__receipt").get(pk=line.pk)
    assert "R202507100000000042" in text_of(payslips.payslip_pdf(line=line, now=NOW))


def test_a_failed_line_shows_the_operators_reason(payroll):
    line = payroll.line(state=TransferState.FAILED, operator_txn_id="", failure_code="WALLET_INACTIVE",
                        failure_message="收款钱包状态异常 (payee wallet is frozen)")
    text = text_of(payslips.payslip_pdf(line=line, now=NOW))
    assert "发放失败" in text and "Payment failed" in text
    assert "收款钱包状态异常" in text and "payee wallet is frozen" in text and "WALLET_INACTIVE" in text
    assert "已到账" not in text and "Settled at" not in text
    assert "2025-07-10 00:30:05" in text  # when it failed
    assert "¥7,135.44" in text  # what was due is still shown


@pytest.mark.parametrize("state, held, says", [
    (None, False, "未发放"),
    (None, True, "暂缓发放"),
    (TransferState.PENDING, False, "发放中"),
    (TransferState.UNKNOWN, False, "结果待运营机构确认"),
])
def test_a_line_not_paid_yet_says_so(payroll, state, held, says):
    line = payroll.line(state=state, held=held, hold_reason="姓名与钱包户名不一致 (name does not match)" if held else "")
    text = text_of(payslips.payslip_pdf(line=line, now=NOW))
    assert says in text
    assert "已到账" not in text and "到账时间" not in text
    if held:
        assert "姓名与钱包户名不一致" in text


def test_payment_status_for_pages(payroll):
    failed = payroll.line(state=TransferState.FAILED, failure_message="余额不足 (insufficient funds)")
    status = payslips.payment_status(line=failed)
    assert status["state"] == TransferState.FAILED and status["reason"] == "余额不足 (insufficient funds)"
    assert status["transfer_id"] == failed.transfer_id
    assert payslips.payment_status(line=payroll.line(state=None))["state"] == "not_paid"


def test_a_long_reason_wraps_inside_the_page(payroll):
    reason = "收款钱包状态异常，运营机构拒绝入账 (the payee wallet is frozen by its operator; ask the employee to contact the bank)"
    line = payroll.line(state=TransferState.FAILED, failure_message=reason)
    text = text_of(payslips.payslip_pdf(line=line, now=NOW))
    assert "运营机构拒绝入账" in text and "ask the employee" in text and "bank)" in text
    assert "…" not in text and "运营机构流水号" in text  # whole, and the rows after it are still there


def test_a_reason_too_long_for_the_page_is_cut(payroll):
    line = payroll.line(state=TransferState.FAILED, failure_message="收款钱包状态异常" * 31 + "末尾")
    text = text_of(payslips.payslip_pdf(line=line, now=NOW))
    assert "收款钱包状态异常" in text and "…" in text and "末尾" not in text
    assert "运营机构流水号" in text and "生成时间" in text


def test_naive_now_is_refused(payroll):
    with pytest.raises(ValueError):
        payslips.payslip_pdf(line=payroll.line(), now=datetime(2025, 7, 10, 9, 0))


class OnlyWrites(io.RawIOBase):
    """A non-seekable sink, like a streaming HTTP response."""

    def __init__(self):
        self.chunks = []

    def writable(self):
        return True

    def write(self, data):
        self.chunks.append(bytes(data))
        return len(data)

    def value(self):
        return b"".join(self.chunks)


@pytest.mark.parametrize("seekable", [True, False])
def test_zip_holds_one_payslip_per_line_and_every_amount_to_the_fen(payroll, seekable):
    lines = [
        payroll.line(),
        payroll.line(name="李四", components={**COMPONENTS, "bonus": 12_345_67}),
        payroll.line(state=TransferState.FAILED, failure_message="收款钱包状态异常 (payee wallet is frozen)"),
        payroll.line(state=None, held=True, hold_reason="钱包已冻结或注销 (the wallet is frozen or closed)"),
    ]
    out = io.BytesIO() if seekable else OnlyWrites()
    payslips.payslips_zip(batch=payroll.batch, out=out, now=NOW)
    data = out.getvalue() if seekable else out.value()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == [f"2025-06-{line.employee_no}.pdf" for line in lines]
        assert archive.getinfo(names[0]).date_time == (2025, 7, 10, 9, 0, 0)
        for line, name in zip(lines, names):
            text = text_of(archive.read(name))
            assert line.employee_no in text and line.name in text
            assert format_yuan(line.net_fen) in text and fen_to_capitals(line.net_fen) in text
            assert format_yuan(line.gross_fen) in text
        assert "¥12,345.67" in text_of(archive.read(names[1]))
        assert "发放失败" in text_of(archive.read(names[2])) and "暂缓发放" in text_of(archive.read(names[3]))


def test_zip_file_names_are_safe(payroll):
    line = payroll.line()
    PayrollLine.objects.filter(pk=line.pk).update(employee_no="../财务/E 01")
    out = io.BytesIO()
    payslips.payslips_zip(batch=payroll.batch, out=out, now=NOW)
    (name,) = zipfile.ZipFile(out).namelist()
    assert name == "2025-06-_财务_E_01.pdf"
    assert payslips.payslips_zip_filename(batch=payroll.batch) == f"payslips-2025-06-batch{payroll.batch.pk}.zip"


def test_zip_reads_the_lines_in_chunks(payroll, django_assert_max_num_queries, monkeypatch):
    for _ in range(7):
        payroll.line()
    monkeypatch.setattr(payslips, "ZIP_READ_CHUNK", 3)
    with django_assert_max_num_queries(6):  # the batch, then chunked reads: not a query per line
        payslips.payslips_zip(batch=payroll.batch, out=io.BytesIO(), now=NOW)


# ---------------------------------------------------------------------------------------------
# A real batch through the services and the sandbox operator
# ---------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_paid_batch_payslips_and_summary_receipt(employer):  # noqa: F811
    rows = staff(employer, 3)
    batch = upload(employer, rows)
    now = dj_timezone.now()
    payroll_services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    payroll_services.approve_batch(batch_id=batch.pk, user=employer.approver, now=now)
    payroll_services.fund_batch(batch_id=batch.pk, user=employer.approver, now=now)
    employer.sandbox.admin.set_status(wallet_id=rows[1][3], status="frozen")  # after the checks: paying fails
    with pytest.raises(PayrollError) as caught:
        payslips.batch_summary_receipt(batch=batch, now=now)
    assert caught.value.code == "batch_not_finished"
    payroll_services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    batch = payroll_services.finish_batch_if_done(batch_id=batch.pk, now=dj_timezone.now())
    assert batch.state == BatchState.PARTIALLY_PAID

    lines = list(batch.lines.select_related("batch__employer", "transfer__receipt").order_by("line_no"))
    paid, failed = lines[0], lines[1]
    text = text_of(payslips.payslip_pdf(line=paid, now=now))
    assert paid.transfer.state == TransferState.SETTLED and paid.transfer.operator_txn_id
    for item in ("已到账", paid.transfer.operator_txn_id, str(paid.transfer_id), format_yuan(builders.net_fen(rows[0])),
                 fen_to_capitals(builders.net_fen(rows[0])), employer.org.name, batch.period):
        assert item in text, item
    text = text_of(payslips.payslip_pdf(line=failed, now=now))
    assert failed.transfer.state == TransferState.FAILED
    assert "发放失败" in text and failed.transfer.failure_message[:8] in text

    with pytest.raises(PayrollError) as caught:  # the failed line may still be paid: the receipt would be short
        payslips.batch_summary_receipt(batch=batch, now=now)
    assert caught.value.code == "lines_open"
    payroll_services.return_lines(batch_id=batch.pk, line_ids=[failed.pk], user=employer.operator_user,
                                  reason="现金发放", now=now)
    receipt = payslips.batch_summary_receipt(batch=batch, now=now)
    assert receipt.kind == Receipt.Kind.BATCH and receipt.batch_ref == batch.batch_ref
    assert receipt.payload["counts"]["settled"] == 2 and receipt.payload["counts"]["failed"] == 1
    assert receipt.payload["total"]["fen"] == builders.net_fen(rows[0]) + builders.net_fen(rows[2])
    assert receipt_file(receipt.file_path).read_bytes()[:5] == b"%PDF-"
    assert payslips.batch_summary_receipt(batch=batch, now=now).pk == receipt.pk  # idempotent

    out = io.BytesIO()
    payslips.payslips_zip(batch=batch, out=out, now=now)
    assert len(zipfile.ZipFile(out).namelist()) == 3
