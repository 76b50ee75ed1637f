"""Payslips (工资条): one PDF page per employee, a zip of a whole batch, and the employer's batch receipt.

Payslips are documents for people, not proofs of payment: they are rendered on request from the
payroll line and its transfer, never stored and not signed. The proof of a payment is the signed
e-CNY receipt the transfer core issues for each settled transfer (its number is printed on the
payslip), and for the employer the batch summary receipt.

Rendering reuses the receipt renderer's building blocks (treasury.receipts.pdf): the built-in CID
font STSong-Light for Chinese (no font file needed; pypdf and every viewer extract the text) and
Helvetica for figures, with all of a page's text in one text object.

Who may see a payslip is the caller's business: the rendering functions do not check users. The
employee and the employer see the full name; the resident ID and the wallet are masked on the page.

A whole batch's payslips are a zip built in the background (`request_payslip_archive` queues
`build_payslip_archive` on the "payroll" queue): a run of 100,000 lines takes minutes at about
400 payslips a second, far too long for a request. Whoever may see the batch may ask for its
archive and download it.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q, Sum
from reportlab.lib.pagesizes import A5
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas as rl_canvas

from treasury.access import roles
from treasury.access.errors import AccessDenied
from treasury.identifiers import mask_resident_id, mask_wallet_id
from treasury.models import Transfer, TransferState
from treasury.money import fen_to_capitals, format_yuan
from treasury.receipts import pdf
from treasury.receipts.models import Receipt
from treasury.receipts.services import ReceiptError, issue_batch_receipt, issuer_name

from . import selectors
from .models import ArchiveState, BatchState, PayrollBatch, PayrollLine, PayslipArchive
from .parsing import DEDUCTIONS, PAY_COMPONENTS
from .services import PayrollError, line_progress

logger = logging.getLogger(__name__)

DISPLAY_TZ = ZoneInfo("Asia/Shanghai")
PAGE_SIZE = A5  # portrait, 420 x 595 pt
ZIP_READ_CHUNK = 500  # lines fetched per query while zipping
PROGRESS_EVERY = 250  # payslips between two progress updates of an archive (well under a second)
ARCHIVE_DIR = "payroll/payslips"  # under MEDIA_ROOT
REASON_MAX_LINES = 4  # an operator's reason (up to 255 characters) is cut with "…" beyond this

# (Chinese, English) labels of the line's amounts, in the template's order.
COMPONENT_LABELS = {
    "basic_wage": ("基本工资", "Basic wage"),
    "allowances": ("津贴", "Allowances"),
    "subsidies": ("补贴", "Subsidies"),
    "bonus": ("奖金", "Bonus"),
    "other_pay": ("其他应发", "Other pay"),
}
DEDUCTION_LABELS = {
    "social_insurance": ("个人社会保险", "Social insurance (employee)"),
    "housing_fund": ("住房公积金", "Housing fund"),
    "income_tax": ("个人所得税", "Individual income tax"),
    "union_dues": ("工会会费", "Union dues"),
    "other_deductions": ("其他扣款", "Other deductions"),
}
assert tuple(COMPONENT_LABELS) == PAY_COMPONENTS and tuple(DEDUCTION_LABELS) == DEDUCTIONS

# Payment status as the employee reads it: (Chinese, English) by the transfer's state.
STATUS_LABELS = {
    TransferState.PENDING: ("发放中", "Payment in progress"),
    TransferState.SUBMITTED: ("发放中", "Payment in progress"),
    TransferState.UNKNOWN: ("发放中（结果待运营机构确认）", "Payment in progress (awaiting the operator)"),
    TransferState.SETTLED: ("已到账", "Paid (settled)"),
    TransferState.FAILED: ("发放失败", "Payment failed"),
    TransferState.RETURNED: ("已到账后退回", "Paid, then returned"),
    TransferState.REVERSED: ("已到账后冲正", "Paid, then reversed"),
    TransferState.CANCELLED: ("已取消", "Cancelled"),
}
NOT_PAID = ("未发放", "Not yet paid")
HELD = ("暂缓发放", "Held back by the employer")
FINISHED_BATCH_STATES = (BatchState.PAID, BatchState.PARTIALLY_PAID, BatchState.CLOSED)

_UNSAFE_FILENAME = re.compile(r"[^\w-]+")  # dots too: a name is never a path


# ---------------------------------------------------------------------------------------------
# What a payslip says
# ---------------------------------------------------------------------------------------------


def _local_text(moment: datetime | None) -> str:
    return moment.astimezone(DISPLAY_TZ).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def payment_status(*, line: PayrollLine) -> dict:
    """The line's payment as a payslip shows it (and a page may show it too).

    Returns {"state", "label", "label_en", "at", "reason", "transfer_id", "operator_txn_id"};
    `state` is the transfer's state, or "held" / "not_paid" for a line without a transfer;
    `at` is the settlement time for a settled transfer, otherwise the time it finished (or None).
    """
    transfer: Transfer | None = line.transfer
    if transfer is None:
        held = line.held
        label, label_en = HELD if held else NOT_PAID
        return {"state": "held" if held else "not_paid", "label": label, "label_en": label_en, "at": None,
                "reason": line.hold_reason if held else "", "transfer_id": None, "operator_txn_id": ""}
    label, label_en = STATUS_LABELS.get(transfer.state, (transfer.state, transfer.state))
    if transfer.state == TransferState.SETTLED:
        at = transfer.settled_at
    else:
        at = transfer.finished_at
    reason = ""
    if transfer.state == TransferState.FAILED:
        reason = transfer.failure_message or transfer.failure_code or "运营机构未说明原因 (no reason given by the operator)"
        if transfer.failure_code and transfer.failure_message:
            reason = f"{transfer.failure_message} [{transfer.failure_code}]"
    elif transfer.state in (TransferState.RETURNED, TransferState.REVERSED):
        reason = transfer.failure_message
    return {"state": transfer.state, "label": label, "label_en": label_en, "at": at, "reason": reason,
            "transfer_id": transfer.pk, "operator_txn_id": transfer.operator_txn_id}


def _receipt_number(transfer: Transfer | None) -> str:
    if transfer is None:
        return ""
    try:
        return transfer.receipt.number
    except Receipt.DoesNotExist:
        return ""


def payslip_filename(*, line: PayrollLine) -> str:
    """`<period>-<employee_no>.pdf`; anything but letters, digits, `_` and `-` becomes `_`."""
    return _UNSAFE_FILENAME.sub("_", f"{line.batch.period}-{line.employee_no}") + ".pdf"


def payslips_zip_filename(*, batch: PayrollBatch) -> str:
    """`payslips-<period>-batch<id>.zip`, a name for the download of `payslips_zip`."""
    return _UNSAFE_FILENAME.sub("_", f"payslips-{batch.period}-batch{batch.pk}") + ".zip"


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _width(text: str, size: float) -> float:
    return stringWidth(text, pdf.LATIN_FONT if pdf._is_latin(text) else pdf.CJK_FONT, size)


def _wrap(text: str, size: float, width: float) -> list[str]:
    """Break text into pieces that fit `width` points (at a space where there is one, else anywhere:
    Chinese has no spaces)."""
    pieces = []
    while text and _width(text, size) > width:
        cut = len(text) - 1
        while cut > 1 and _width(text[:cut], size) > width:
            cut -= 1
        space = text.rfind(" ", 0, cut + 1)
        if space > cut // 2:
            cut = space
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*pieces, text] if text or not pieces else pieces


class _Page:
    """Cursor over a portrait A5 page: labelled rows top-down, amounts right-aligned."""

    MARGIN = 30.0
    ROW = 12.8

    def __init__(self, c):
        self.c = c
        self.width, self.height = PAGE_SIZE
        self.text = pdf.PageText(c)  # one text object per page, fonts switched only when the script changes
        self.left = self.MARGIN
        self.right = self.width - self.MARGIN
        self.y = self.height - self.MARGIN - 16
        self.rules: list[tuple[float, str]] = []  # (line width, path)

    def put(self, x: float, text: str, size: float, *, bold: bool = False) -> None:
        self.text.put(x, self.y, text, size, bold=bold)

    def put_right(self, text: str, size: float, *, bold: bool = False) -> None:
        # Values right-aligned are figures and ids: Latin text, set in Helvetica by pdf.PageText.
        width = stringWidth(text, pdf.LATIN_BOLD_FONT, size) if bold and pdf._is_latin(text) else _width(text, size)
        self.text.put(self.right - width, self.y, text, size, bold=bold)

    def rule(self, *, width: float = 0.3) -> None:
        y = self.y - 4.5
        self.rules.append((width, "%.2f %.2f m %.2f %.2f l" % (self.left, y, self.right, y)))

    def down(self, rows: float = 1.0) -> None:
        self.y -= self.ROW * rows

    def heading(self, chinese: str, english: str) -> None:
        self.down(0.5)
        self.put(self.left, chinese, 10.5)
        self.put(self.left + 12 * len(chinese) + 6, english, 7.5, bold=True)
        self.rule(width=0.7)
        self.down()

    def row(self, chinese: str, english: str, value: str, *, amount: bool = False, bold: bool = False,
            value_x: float = 150.0) -> None:
        self.put(self.left, chinese, 9)
        self.put(self.left + 9.2 * len(chinese) + 5, english, 6.5)
        if amount:
            self.put_right(value, 9.5, bold=bold)
        else:
            self.put(self.left + value_x, value, 9, bold=bold)
        self.rule()
        self.down()

    def note_row(self, chinese: str, english: str, value: str, *, value_x: float, max_lines: int) -> None:
        """A free-text value (an operator's reason) in small type, wrapped, at most max_lines lines."""
        size = 7.5
        width = self.right - self.left - value_x
        pieces = _wrap(value, size, width)
        if len(pieces) > max_lines:
            pieces = pieces[:max_lines]
            while pieces[-1] and _width(pieces[-1] + "…", size) > width:
                pieces[-1] = pieces[-1][:-1]
            pieces[-1] += "…"
        self.put(self.left, chinese, 9)
        self.put(self.left + 9.2 * len(chinese) + 5, english, 6.5)
        for index, piece in enumerate(pieces):
            if index:
                self.y -= size + 1.5
            self.put(self.left + value_x, piece, size)
        self.rule()
        self.down()

    def finish(self) -> None:
        self.c.drawText(self.text.obj)
        for width in sorted({w for w, _ in self.rules}):
            self.c.setLineWidth(width)
            self.c._code.append(" ".join(path for w, path in self.rules if w == width) + " S")


def payslip_pdf(*, line: PayrollLine, now: datetime) -> bytes:
    """One A5 page: employer, period, employee, every pay component and deduction, gross, net in
    figures and in Chinese capitals, and the payment as the transfer core knows it now.

    `now` is the generated time printed on the payslip (timezone-aware). Reads line.batch.employer,
    line.transfer and its receipt: fetch lines with `select_related("batch__employer",
    "transfer__receipt")` when rendering many. No database writes.

    Raises ValueError if `now` is naive.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    pdf.register_fonts()
    batch = line.batch
    employer = batch.employer
    buffer = io.BytesIO()
    c = rl_canvas.Canvas(buffer, pagesize=PAGE_SIZE, pageCompression=1)
    c.setTitle(f"工资条 {batch.period} {line.employee_no}")
    c.setSubject("Payslip")
    c.setAuthor(employer.name)
    page = _Page(c)

    page.put(page.left, "工资条", 18)
    page.put(page.left + 62, "Payslip", 9, bold=True)
    page.put_right(batch.period, 14, bold=True)
    page.down(1.1)
    page.put(page.left, "数字人民币代发工资", 8)
    page.put(page.left + 78, "Salary paid in e-CNY", 7)
    page.put_right("工资所属期 Pay period", 7)
    page.rule(width=1.0)
    page.down(1.2)

    page.row("用人单位", "Employer", employer.name)
    page.row("工资所属期", "Pay period", batch.period)
    page.row("工号", "Employee no.", line.employee_no)
    page.row("姓名", "Name", line.name)
    page.row("身份证号", "Resident ID", mask_resident_id(line.resident_id))
    page.row("数字人民币钱包", "e-CNY wallet", mask_wallet_id(line.wallet_id))

    page.heading("应发项目", "Pay components")
    for key, (chinese, english) in COMPONENT_LABELS.items():
        page.row(chinese, english, format_yuan(line.components.get(key, 0)), amount=True)
    for key in sorted(set(line.components) - set(COMPONENT_LABELS)):  # never drop an amount silently
        page.row("其他", key, format_yuan(line.components[key]), amount=True)
    page.row("应发合计", "Gross pay", format_yuan(line.gross_fen), amount=True, bold=True)

    page.heading("扣除项目", "Deductions")
    for key, (chinese, english) in DEDUCTION_LABELS.items():
        page.row(chinese, english, format_yuan(line.deductions.get(key, 0)), amount=True)
    for key in sorted(set(line.deductions) - set(DEDUCTION_LABELS)):
        page.row("其他", key, format_yuan(line.deductions[key]), amount=True)
    page.row("扣除合计", "Total deductions", format_yuan(sum(line.deductions.values())), amount=True, bold=True)

    page.heading("实发工资", "Net pay")
    page.row("实发金额（小写）", "In figures", format_yuan(line.net_fen), amount=True, bold=True)
    page.row("实发金额（大写）", "In words", "人民币" + fen_to_capitals(line.net_fen), value_x=130.0)

    status = payment_status(line=line)
    page.heading("发放情况", "Payment")
    page.row("状态", "Status", f"{status['label']}  {status['label_en']}", value_x=130.0)
    if status["state"] == TransferState.SETTLED:
        page.row("到账时间", "Settled at", _local_text(status["at"]), value_x=130.0)
    elif status["at"] is not None:
        page.row("处理时间", "Finished at", _local_text(status["at"]), value_x=130.0)
    if status["reason"]:
        page.note_row("原因", "Reason", status["reason"], value_x=130.0, max_lines=REASON_MAX_LINES)
    page.row("转账编号", "Transfer id", str(status["transfer_id"] or "-"), value_x=130.0)
    page.row("运营机构流水号", "Operator txn id", status["operator_txn_id"] or "-", value_x=130.0)
    receipt_number = _receipt_number(line.transfer)
    if receipt_number:
        page.row("电子回单编号", "Receipt no.", receipt_number, value_x=130.0)

    page.y = page.MARGIN + 14
    page.put(page.left, f"生成时间 Generated {_local_text(now)}（北京时间 Asia/Shanghai）", 7)
    page.y -= 10
    page.put(page.left, f"{issuer_name()}　本工资条仅供核对，付款以电子回单为准。", 6.5)
    page.y -= 8
    page.put(page.left, "This payslip is for information; the e-CNY receipt is the proof of payment.", 6.5)
    page.finish()
    c.showPage()
    c.save()
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# A batch
# ---------------------------------------------------------------------------------------------


def payslips_zip(*, batch: PayrollBatch, out, now: datetime,
                 on_progress: Callable[[int], None] | None = None) -> None:
    """Write every line's payslip into a zip on `out` (a binary file-like object, seekable or not:
    an open file, a BytesIO, a streaming response's writer), one `<period>-<employee_no>.pdf` per
    line in line order; held and unpaid lines get theirs too.

    Memory stays flat: lines are read ZIP_READ_CHUNK at a time and each PDF is written to the zip
    as soon as it is rendered. Entries carry `now` (Asia/Shanghai) as their modification time.
    `on_progress(count)` is called every PROGRESS_EVERY payslips and once at the end.
    `out` is not closed. No database writes.

    Raises ValueError if `now` is naive.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    batch = PayrollBatch.objects.select_related("employer").get(pk=batch.pk)
    stamp = now.astimezone(DISPLAY_TZ).timetuple()[:6]
    lines = (
        PayrollLine.objects.filter(batch=batch)
        .select_related("transfer__receipt")
        .order_by("line_no")
        .iterator(chunk_size=ZIP_READ_CHUNK)
    )
    used: set[str] = set()
    done = 0
    # Stored, not deflated: the page streams are Flate-compressed already; deflating again saves
    # little and costs as much as rendering.
    with zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for line in lines:
            line.batch = batch  # one batch (and employer) object for every line: no query per line
            name = payslip_filename(line=line)
            if name in used:  # two employee numbers that differ only in unsafe characters
                name = name[:-4] + f"-{line.line_no}.pdf"
            used.add(name)
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            archive.writestr(info, payslip_pdf(line=line, now=now))
            done += 1
            if on_progress is not None and done % PROGRESS_EVERY == 0:
                on_progress(done)
    if on_progress is not None:
        on_progress(done)


def batch_summary_receipt(*, batch: PayrollBatch, now: datetime) -> Receipt:
    """The employer's signed summary receipt of a finished batch (paid, partially paid or closed):
    issued on first call by the transfer core, the same receipt returned afterwards (idempotent).

    The PDF is `treasury.receipts.services.receipt_file(receipt.file_path)`; the receipts app's
    download and verification pages serve it by `receipt.number`.

    The receipt is a signed statement of what the run paid, issued once: so not while a line may still be paid
    by the run (a failed or held line, to retry or return first), which would leave it short of what was paid.

    Raises:
        PayrollError: batch_not_finished (the batch is still being paid, or never was), lines_open (a line
            failed or held, not yet retried or returned), nothing_settled (no line was paid), or the receipt
            core's other refusals by their code.
    """
    batch = PayrollBatch.objects.get(pk=batch.pk)  # the state as it is now, not as the caller loaded it
    if batch.state not in FINISHED_BATCH_STATES:
        raise PayrollError(
            f"批次尚未发放完成，暂无汇总回单 (batch {batch.pk} is {batch.state}: the summary receipt comes when it "
            f"is paid)",
            "batch_not_finished",
        )
    existing = selectors.summary_receipt(batch=batch)
    if existing is not None:
        return existing
    progress = line_progress(batch=batch)
    if progress.failed or progress.held or progress.open:
        raise PayrollError(
            "仍有失败或暂缓的明细，请先重试或退回，再出具汇总回单 (retry or return the failed and held lines first: "
            "the summary receipt states what the run paid in the end)",
            "lines_open",
        )
    try:
        return issue_batch_receipt(batch_ref=batch.batch_ref, now=now)
    except ReceiptError as exc:
        raise PayrollError(str(exc), exc.code) from exc


# ---------------------------------------------------------------------------------------------
# A batch's payslips as a zip built in the background
# ---------------------------------------------------------------------------------------------

# Who may ask for a batch's payslips: whoever sees the batch (auditors too: an archive is a reading
# of the batch, not a change to it).
ARCHIVE_ROLES = (roles.EMPLOYER_OPERATOR, roles.EMPLOYER_APPROVER, roles.AUDITOR, roles.ADMIN)
ACTIVE_ARCHIVE_STATES = (ArchiveState.QUEUED, ArchiveState.BUILDING)


def content_fingerprint(*, batch: PayrollBatch) -> str:
    """A digest of what the batch's payslips print that can still change once paying has started:
    which lines are held or returned, each line's current transfer with its state and times, and
    the receipts issued. Equal digests mean the payslips read the same. One aggregate query."""
    by_state = {f"n_{state}": Count("pk", filter=Q(transfer__state=state)) for state in TransferState.values}
    figures = batch.lines.aggregate(
        n=Count("pk"), held=Count("pk", filter=Q(held=True)), returned=Count("pk", filter=Q(returned=True)),
        attempts=Sum("attempts"), transfers=Sum("transfer_id"), finished=Max("transfer__finished_at"),
        settled=Max("transfer__settled_at"), receipts=Count("transfer__receipt"), **by_state,
    )
    return hashlib.sha256(json.dumps(figures, sort_keys=True, default=str).encode()).hexdigest()


def archive_is_current(*, archive: PayslipArchive) -> bool:
    """A ready archive whose file is there and whose payslips read as the batch's would now."""
    return (
        archive.state == ArchiveState.READY
        and bool(archive.file_path)
        and (Path(settings.MEDIA_ROOT) / archive.file_path).is_file()
        and archive.fingerprint == content_fingerprint(batch=archive.batch)
    )


def request_payslip_archive(*, batch_id: int, user, now: datetime) -> PayslipArchive:
    """Ask for a zip of the batch's payslips, built by a Celery task (queued after commit).

    Idempotent: while an archive of the batch is queued or building, that archive is returned (the
    database allows one at a time); a ready archive whose payslips read as the batch's would now is
    returned as it is; otherwise a new archive is queued and returned.

    Raises:
        AccessDenied: not_found (the user may not see this batch), role_required.
        PayrollError: batch_not_paying (payslips come once the batch is being paid).
    """
    batch = selectors.visible_batches(user).filter(pk=batch_id).first()
    if batch is None:
        raise AccessDenied("不能查看其他单位的批次 (this batch belongs to another organization)", code="not_found")
    if not roles.has_role(user, *ARCHIVE_ROLES):
        raise AccessDenied("没有此操作的权限 (your role cannot do this)", code="role_required")
    if batch.state not in selectors.PAYING_OR_LATER:
        raise PayrollError("批次开始发放后才有工资条 (payslips come once the batch is being paid)",
                           "batch_not_paying")
    with transaction.atomic():
        active = batch.payslip_archives.filter(state__in=ACTIVE_ARCHIVE_STATES).first()
        if active is not None:
            return active
        latest = batch.payslip_archives.filter(state=ArchiveState.READY).order_by("-pk").first()
        if latest is not None and archive_is_current(archive=latest):
            return latest
        try:
            with transaction.atomic():
                archive = PayslipArchive.objects.create(batch=batch, requested_by=user, created_at=now,
                                                        total_count=batch.lines.count())
        except IntegrityError:  # another request queued one at the same moment
            return batch.payslip_archives.get(state__in=ACTIVE_ARCHIVE_STATES)
        from .tasks import build_payslip_archive_task

        transaction.on_commit(partial(build_payslip_archive_task.apply_async, kwargs={"archive_id": archive.pk}))
    return archive


def build_payslip_archive(*, archive_id: int, clock: Callable[[], datetime]) -> PayslipArchive:
    """Build a queued archive: every payslip of the batch streamed into a temporary file next to the
    target, renamed into place once complete (a reader never sees half a zip). `done_count` is updated
    every PROGRESS_EVERY payslips. `clock()` gives the payslips' generated time at the start and
    `finished_at` at the end.

    Safe to run twice: a ready or failed archive is left alone; one still building (its worker died
    and the task was delivered again) is built again from the start. Any error while writing marks
    the archive failed with a message for the clerk (the traceback goes to the log); nothing is raised.
    Once ready, the files of the batch's older archives are removed (their rows stay).
    """
    now = clock()
    with transaction.atomic():
        archive = PayslipArchive.objects.select_for_update().select_related("batch").get(pk=archive_id)
        if archive.state not in ACTIVE_ARCHIVE_STATES:
            return archive
        archive.start()
        archive.fingerprint = content_fingerprint(batch=archive.batch)
        archive.total_count = archive.batch.lines.count()
        archive.done_count = 0
        archive.save()
    relative = f"{ARCHIVE_DIR}/{archive.batch_id}/{payslips_zip_filename(batch=archive.batch)[:-4]}-{archive.pk}.zip"
    target = Path(settings.MEDIA_ROOT) / relative
    part = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        part = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False)
        with part:
            payslips_zip(batch=archive.batch, out=part, now=now, on_progress=partial(_record_progress, archive.pk))
            part.flush()
            os.fsync(part.fileno())
        os.replace(part.name, target)
    except Exception as exc:
        logger.exception("payslip archive %s of batch %s failed", archive.pk, archive.batch_id)
        if part is not None:
            Path(part.name).unlink(missing_ok=True)
        return _record_outcome(archive_id=archive.pk, now=clock(), error=(
            f"生成工资条失败，请重试；仍失败请联系管理员 (building the payslips failed: try again, or ask the "
            f"administrator if it fails again) [{type(exc).__name__}]"))
    return _record_outcome(archive_id=archive.pk, now=clock(), file_path=relative)


def _record_progress(archive_id: int, done: int) -> None:
    PayslipArchive.objects.filter(pk=archive_id, state=ArchiveState.BUILDING).update(done_count=done)


def _record_outcome(*, archive_id: int, now: datetime, file_path: str = "", error: str = "") -> PayslipArchive:
    replaced = []
    with transaction.atomic():
        archive = PayslipArchive.objects.select_for_update().get(pk=archive_id)
        if archive.state != ArchiveState.BUILDING:  # another delivery of the task finished it first
            return archive
        if error:
            archive.fail()
            archive.error = error[:255]
        else:
            archive.finish()
            archive.file_path = file_path
            archive.done_count = archive.total_count
            older = PayslipArchive.objects.filter(batch_id=archive.batch_id, pk__lt=archive.pk).exclude(file_path="")
            replaced = list(older.values_list("file_path", flat=True))
            older.update(file_path="")
        archive.finished_at = now
        archive.save()
    for relative in replaced:  # after commit: a rolled-back outcome never loses a file
        (Path(settings.MEDIA_ROOT) / relative).unlink(missing_ok=True)
    return archive


def archive_file(*, archive: PayslipArchive) -> Path:
    """The zip of a ready archive, to send as a download.

    Raises:
        PayrollError: archive_not_ready (still building, failed, or replaced by a newer archive).
    """
    path = Path(settings.MEDIA_ROOT) / archive.file_path if archive.file_path else None
    if archive.state != ArchiveState.READY or path is None or not path.is_file():
        raise PayrollError("工资条压缩包尚未生成或已被新的替换 (the payslip archive is not ready, or a newer one "
                           "replaced it)", "archive_not_ready")
    return path
