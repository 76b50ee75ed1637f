"""入库流水 (treasury entry detail, 3139): the day's treasury entries sent to the tax system.

`entry_details` builds, for an entry date, one `TreasuryEntryDetail` per tax authority and treasury (split in
packages of at most 1,000 lines: ChildPackNum / CurPackNo), one line per treasury entry (budget type and
level, the tax type's project id as the budget subject, the amount, negative for an entry reversed, and the
deduction's tax voucher). A paid refund's negative entry is not a line: the tax system ordered the refund
(1104) and has its result (2104). A reconciliation correction's entry is (positive collected, negative paid
back, under the corrected deduction's voucher): the tax system did not order it. `send_entry_details` sends each through the TIPS client and records it in
`EntryDetailPackage`; a package acknowledged before with the same count and amount is not sent again, one
whose content changed (a reversal dated that day) is. Run by hand with `python manage.py send_tax_entries
--date YYYY-MM-DD` or the Celery task `tax_reconciliation.send_entry_details` (yesterday by default).
"""
from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, datetime

from django.db.models.functions import Coalesce

from adapters.tips.interface import EntryLine, TreasuryEntryDetail

from . import services
from .models import EntryDetailPackage, TreasuryEntry

PACKAGE_LINES = 1000
_VOU_NO = re.compile(r"[0-9A-Za-z]{1,20}")
_SUBJECT = re.compile(r"[0-9A-Za-z]{1,30}")


def entry_details(*, entry_date: date) -> list[TreasuryEntryDetail]:
    """The day's 3139 packages, by (tax authority, treasury), in a stable order."""
    groups = defaultdict(list)
    rows = (TreasuryEntry.objects.filter(entry_date=entry_date, refund__isnull=True).exclude(treasury_code="")
            .order_by("tax_org_code", "treasury_code", "pk")
            .values_list("tax_org_code", "treasury_code", "budget_type", "budget_level_code", "project_id", "amount_fen",
                         Coalesce("deduction__tax_vou_no", "correction__deduction__tax_vou_no")))
    for org, tre, budget_type, level, project_id, amount, vou_no in rows:
        groups[org, tre].append(EntryLine(
            budget_type=budget_type, budget_level_code=level, amount_fen=amount,
            budget_subject_code=project_id if _SUBJECT.fullmatch(project_id or "") else "",
            exp_tax_vou_no=vou_no if _VOU_NO.fullmatch(vou_no or "") else ""))
    details = []
    for (org, tre), lines in groups.items():
        chunks = [lines[i:i + PACKAGE_LINES] for i in range(0, len(lines), PACKAGE_LINES)]
        for n, chunk in enumerate(chunks, start=1):
            details.append(TreasuryEntryDetail(
                tre_code=tre, tax_org_code=org, in_tre_date=entry_date, pack_no=f"{n:08d}", all_num=len(chunk),
                all_amount_fen=sum(line.amount_fen for line in chunk), child_pack_num=len(chunks), cur_pack_no=n,
                lines=tuple(chunk)))
    return details


def send_entry_details(*, entry_date: date, now: datetime) -> dict[str, int]:
    """Send the day's 3139 packages not yet acknowledged as they are now. No lock is held while sending;
    a failure stays on the package (`error`) for the next call. Returns counts: sent, unchanged, failed."""
    counts = defaultdict(int)
    for detail in entry_details(entry_date=entry_date):
        key = dict(tax_org_code=detail.tax_org_code, treasury_code=detail.tre_code, entry_date=entry_date,
                   cur_pack_no=detail.cur_pack_no)
        package = EntryDetailPackage.objects.filter(**key).first()
        content = (detail.all_num, detail.all_amount_fen, detail.child_pack_num)
        if package and package.acknowledged_at and (package.all_num, package.all_amount_fen,
                                                    package.child_pack_num) == content:
            counts["unchanged"] += 1
            continue
        acknowledged, error, _ = services.send_to_tips(lambda: services._tips().send_entry_detail(detail))
        package, _ = EntryDetailPackage.objects.get_or_create(
            **key, defaults=dict(child_pack_num=detail.child_pack_num, all_num=detail.all_num,
                                 all_amount_fen=detail.all_amount_fen))
        package.child_pack_num, package.all_num, package.all_amount_fen = content[2], content[0], content[1]
        package.attempts += 1
        package.error = error[:255]
        package.sent_at = now
        package.acknowledged_at = now if acknowledged else None
        package.save()
        counts["sent" if acknowledged else "failed"] += 1
    return dict(counts)
