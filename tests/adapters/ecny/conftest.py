"""Fixtures of the e-CNY adapter tests: a sandbox operator on a real port, wallets, clients."""
import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from adapters.ecny.client import HttpOperatorClient
from adapters.ecny.interface import TransferInstruction

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The sandbox's clock is pinned here so that daily limits and statements do not depend on the hour.
PINNED_NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)
BUSINESS_DAY = dt.date(2026, 3, 2)

_wallet_numbers = itertools.count(1)


@pytest.fixture
def sandbox(ecny_sandbox):
    ecny_sandbox.admin.set_clock(at=PINNED_NOW)
    return ecny_sandbox


@pytest.fixture
def client(sandbox, settings):
    """A client with a short read timeout, so timeout faults stay quick."""
    client = HttpOperatorClient(sandbox.url, settings.ECNY_OPERATOR_API_KEY, 0.5, 1.0)
    yield client
    client.close()


@pytest.fixture
def open_wallet(sandbox):
    """open_wallet(wallet_type="WT01", wallet_class=4, balance_fen=0) -> wallet id."""

    def make(*, wallet_type="WT01", wallet_class=None, balance_fen=0, holder_name="张三", operator_code="001"):
        if wallet_type in ("WT01", "WT02", "WT03") and wallet_class is None:
            wallet_class = 1
        wallet_id = f"{operator_code}{next(_wallet_numbers):013d}"
        sandbox.admin.open_wallet(wallet_id=wallet_id, wallet_type=wallet_type, wallet_class=wallet_class,
                                  holder_name=holder_name, balance_fen=balance_fen)
        return wallet_id

    return make


@pytest.fixture
def treasury_wallet(open_wallet):
    """A corporate payer (no class limits) holding 1,000,000.00 yuan."""
    return open_wallet(wallet_type="WT09", holder_name="某市财政局零余额账户", balance_fen=1_000_000_00)


_request_numbers = itertools.count(1)


def new_request_id() -> str:
    return f"req-{next(_request_numbers):08d}"


def instruction(*, payer, payee, amount_fen, request_id=None, **extra) -> TransferInstruction:
    return TransferInstruction(request_id=request_id or new_request_id(), payer_wallet=payer, payee_wallet=payee,
                               amount_fen=amount_fen, **extra)
