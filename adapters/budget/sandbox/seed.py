"""Demo quotas (指标) of the sandbox budget system: fiscal year 2026, admin division 370100 (Jinan, the demo city).

Functional classes: 2080505 (机关事业单位基本养老保险缴费支出), 2089999 (其他社会保障和就业支出),
2130599 (其他巩固脱贫攻坚成果衔接乡村振兴支出); economic classes 30305 (生活补助, subsidies to
individuals) and 30101 (基本工资, basic wages); fund type 1 (general public budget).
"""
from __future__ import annotations

DEMO_ADM_DIV_CODE = "370100"
DEMO_FISCAL_YEAR = 2026


def _quota(quota_id, agency_code, agency_name, exp_func_code, exp_eco_code, amount_yuan, purpose, pay_type_code="1"):
    return {
        "quota_id": quota_id,
        "adm_div_code": DEMO_ADM_DIV_CODE,
        "fiscal_year": DEMO_FISCAL_YEAR,
        "agency_code": agency_code,
        "agency_name": agency_name,
        "exp_func_code": exp_func_code,
        "exp_eco_code": exp_eco_code,
        "fund_type_code": "1",
        "pay_type_code": pay_type_code,
        "amount_fen": amount_yuan * 100,
        "purpose": purpose,
    }


DEMO_QUOTAS = [
    _quota("ZB2026-101001-001", "101001", "市民政局", "2089999", "30305", 8_000_000, "困难群众生活补助"),
    _quota("ZB2026-101001-002", "101001", "市民政局", "2080505", "30101", 2_500_000, "机关事业单位基本工资",
           pay_type_code="2"),
    _quota("ZB2026-101002-001", "101002", "市农业农村局", "2130599", "30305", 5_000_000, "乡村振兴补贴发放"),
    _quota("ZB2026-101003-001", "101003", "市人力资源和社会保障局", "2080505", "30305", 12_000_000, "养老保险补贴"),
    _quota("ZB2026-101003-002", "101003", "市人力资源和社会保障局", "2089999", "30101", 3_000_000, "基本工资"),
]
