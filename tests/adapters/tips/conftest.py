"""Fixtures of the TIPS adapter tests: the tax system's key pair, the recording handler, sample messages."""
import datetime as dt
import itertools

import pytest

from adapters.tips import messages as m
from adapters.tips import signing
from adapters.tips.interface import (
    AgreementVerification,
    BatchDeduction,
    BatchResult,
    DeductionItem,
    DeductionResult,
    RealTimeDeduction,
    TaxTypeItem,
    TreasuryAccount,
)
from tests.adapters.tips import doubles

SERVICE_NODE = "100000000001"
TAX_NODE = "100000000002"
WORK_DATE = dt.date(2026, 3, 2)
TREASURY = TreasuryAccount(payee_bank_no="011100000003", payee_org_code="3201000000", payee_acct="0010000000009999",
                           payee_name="国家金库南京市中心支库", pay_bk_code="001000000000", handle_type="0")
_numbers = itertools.count(1)


@pytest.fixture
def tax_key(settings, tmp_path):
    """The tax system's key pair: private key to sign with, public key where the service looks for it."""
    key = signing.ensure_key_pair(tmp_path / "tax.pem", tmp_path / "tax.pub.pem")
    settings.TIPS_PEER_PUBLIC_KEY_FILE = tmp_path / "tax.pub.pem"
    settings.TIPS_NODE_CODE = SERVICE_NODE
    settings.TIPS_PEER_NODE_CODE = TAX_NODE
    signing.peer_public_key.cache_clear()
    yield key
    signing.peer_public_key.cache_clear()


@pytest.fixture
def handler(settings):
    settings.TIPS_MESSAGE_HANDLER = doubles.PATH
    doubles.RecordingHandler.reset()
    yield doubles.RecordingHandler
    doubles.RecordingHandler.reset()


def head(msg_no: str, **changes):
    return m.new_head(msg_no=msg_no, src=changes.pop("src", TAX_NODE), des=changes.pop("des", SERVICE_NODE),
                      work_date=WORK_DATE, **changes)


def item(n: int = 1, *, amount_fen: int = 1234_56, **changes) -> DeductionItem:
    fields = dict(tra_no=f"{n:08d}", pay_op_bk_code="001000000000", pay_acct=f"00100000000{n:05d}",
                  hand_org_name="南京某某科技有限公司", amount_fen=amount_fen, tax_vou_no=f"3201{n:012d}",
                  tax_pay_name="南京某某科技有限公司", protocol_no=f"P2026-{n:06d}", remark="3月增值税",
                  tax_types=(TaxTypeItem(project_id="10101", tax_type_name="增值税", tax_start_date=dt.date(2026, 2, 1),
                                         tax_end_date=dt.date(2026, 2, 28), amount_fen=amount_fen),))
    fields.update(changes)
    return DeductionItem(**fields)


def real_time(n: int | None = None, **changes) -> RealTimeDeduction:
    n = n or next(_numbers)
    return RealTimeDeduction(head=head(m.REAL_TIME_DEDUCTION), tax_org_code="13201000000", entrust_date=WORK_DATE,
                             treasury=TREASURY, item=item(n, **changes))


def batch(count: int = 3, *, pack_no: str | None = None) -> BatchDeduction:
    items = tuple(item(n, amount_fen=100_00 + n) for n in range(1, count + 1))
    return BatchDeduction(head=head(m.BATCH_DEDUCTION), tax_org_code="13201000000", entrust_date=WORK_DATE,
                          pack_no=pack_no or f"{next(_numbers):08d}", all_num=count,
                          all_amount_fen=sum(i.amount_fen for i in items), return_term=3, treasury=TREASURY,
                          items=items)


def verification(**changes) -> AgreementVerification:
    fields = dict(send_org_code="13201000000", entrust_date=WORK_DATE, vc_no=f"{next(_numbers):08d}", vc_sign="0",
                  tax_org_code="13201000000", tax_pay_code="91310110666007217T", tax_pay_name="上海某某有限公司",
                  pay_op_bk_code="001000000000", pay_bk_code="001000000000", pay_acct="0010000000000001",
                  hand_org_name="上海某某有限公司", protocol_no="P2026-000001")
    fields.update(changes)
    return AgreementVerification(**fields)


def batch_result(pack: BatchDeduction | None = None) -> BatchResult:
    pack = pack or batch()
    lines = tuple(DeductionResult(ori_tax_org_code=pack.tax_org_code, ori_entrust_date=pack.entrust_date,
                                  ori_tra_no=i.tra_no, tax_vou_no=i.tax_vou_no, amount_fen=i.amount_fen,
                                  result="90000" if n else "24007", add_word="" if n else "余额不足",
                                  tax_date=WORK_DATE if n else None) for n, i in enumerate(pack.items))
    ok = [line for line in lines if line.result == "90000"]
    return BatchResult(pay_bk_code="001000000000", entrust_date=WORK_DATE, pack_no=pack.pack_no,
                       ori_tax_org_code=pack.tax_org_code, ori_entrust_date=pack.entrust_date, ori_pack_no=pack.pack_no,
                       all_num=len(lines), all_amount_fen=sum(line.amount_fen for line in lines), succ_num=len(ok),
                       succ_amount_fen=sum(line.amount_fen for line in ok), result="90000", items=lines)


def signed_request(document: bytes, key, *, signature: str | None = None) -> bytes:
    sig = signing.sign_with(key, document) if signature is None else signature
    return m.soap_message(m.SignedDocument(document=document, signature=sig))
