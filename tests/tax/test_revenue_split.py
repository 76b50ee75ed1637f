"""The central/local split of treasury entries (tax.services.split_revenue): the central share rounded half up
(away from zero for a refund's negative amount), the local share the rest, so the two always add up."""
from decimal import ROUND_HALF_UP, Decimal

import pytest

from tax.services import split_revenue


def by_decimal(amount_fen: int, percent) -> tuple[int, int]:
    central = int((Decimal(amount_fen) * Decimal(percent) / Decimal(100)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return central, amount_fen - central


@pytest.mark.parametrize("percent", [1, 3, 7, 33, 50, 60, 99])
def test_whole_percent_shares_split_as_decimal_rounding_does(settings, percent):
    settings.TAX_REVENUE_SHARING = {"某税": (percent, 100 - percent)}
    for amount in [*range(-2_000, 2_001), 10 ** 15 + 1, -(10 ** 15) - 1]:
        assert split_revenue(amount_fen=amount, tax_type_name="某税", budget_level_code="3") == by_decimal(amount, percent)


def test_half_a_fen_goes_to_the_central_share_and_a_refund_mirrors_a_deduction(settings):
    settings.TAX_REVENUE_SHARING = {"增值税": (50, 50)}
    assert split_revenue(amount_fen=1, tax_type_name="增值税", budget_level_code="3") == (1, 0)
    assert split_revenue(amount_fen=-1, tax_type_name="增值税", budget_level_code="3") == (-1, 0)
    assert split_revenue(amount_fen=-3, tax_type_name="增值税", budget_level_code="3") == (-2, -1)


def test_a_share_with_a_fraction_and_an_unlisted_tax_type(settings):
    settings.TAX_REVENUE_SHARING = {"某税": ("62.5", "37.5")}
    assert split_revenue(amount_fen=3, tax_type_name="某税", budget_level_code="3") == by_decimal(3, "62.5") == (2, 1)
    assert split_revenue(amount_fen=500, tax_type_name="其他", budget_level_code="1") == (500, 0)
    assert split_revenue(amount_fen=500, tax_type_name="其他", budget_level_code="3") == (0, 500)
