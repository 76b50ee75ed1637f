"""Demo data and an end-to-end demo run (`manage.py demo`).

Everything here goes through the same services the product uses; the only shortcut is that the
sandbox operator's admin API opens and funds wallets, as an operator's back office would.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from stdnum.cn import ric, uscc

from payroll.models import UnionMember, UnionSettings
from payroll.templates_files import TEMPLATE_COLUMNS
from payroll.union import dues_fen as union_dues_fen
from treasury.access import roles
from treasury.access.models import Membership, PersonalAccount
from treasury.models import LedgerAccount, Organization, Wallet
from treasury.services.parties import register_organization, register_person
from treasury.services.wallets import register_wallet

OPERATOR_PREFIX = "001"  # first 3 digits of the sandbox operator's wallet ids

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀兰", "霞"]


def make_uscc(body17: str) -> str:
    """A unified social credit code with its check character (stdnum takes the 17 without it)."""
    return body17 + uscc.calc_check_digit(body17)


def make_resident_id(region: str, birth: str, sequence: int) -> str:
    base = f"{region}{birth}{sequence % 1000:03d}0"
    return base[:17] + ric.calc_check_digit(base)  # ric takes all 18 and ignores the last


def wallet_number(kind_digit: int, serial: int) -> str:
    return f"{OPERATOR_PREFIX}{kind_digit}{serial:012d}"


def employee_no(wallet: Wallet) -> str:
    return f"E{int(wallet.wallet_id[-6:]):05d}"


def employee_social_share(*, region_code: str, period: str) -> Callable[[int], int]:
    """What a payroll office withholds for social insurance from a gross salary: the employee's share as the
    region's rules for the month compute it (the base clamped to floor..ceiling), so a declaration made from
    the run finds the withholdings right."""
    from social_security import rules

    month_rules = rules.rules_for(region=region_code, on=dt.date.fromisoformat(f"{period}-01"))
    return lambda gross: rules.premiums(base_fen=rules.clamp_base(base_fen=gross, rules=month_rules)[0],
                                        rules=month_rules).individual_fen


def payroll_csv(*, employer: Organization, period: str, staff: list[Wallet], spoil: dict | None = None,
                social_share: Callable[[int], int], variant: int = 0, union_members: frozenset[str] = frozenset(),
                social_slips: dict[int, int] | None = None) -> bytes:
    """A payroll file of `staff` as an employer's payroll office would export it; `spoil` maps a row
    index to {column index: wrong value} to show the error report; `variant` (0-99) changes the
    bonuses by that many fen, so each demo run uploads a file of its own. Union dues are withheld from
    `union_members` (resident IDs) only, as the upload checks. Social insurance withheld is
    `social_share(gross)`, off by `social_slips[row index]` fen on the rows named there (a slip the file itself
    cannot show: its sums still add up)."""
    rows = []
    for index, wallet in enumerate(staff):
        basic = 6_000_00 + 113_00 * (index % 9) + index
        allowances, subsidies, bonus = 500_00, 300_00, 1_000_00 * (index % 3 == 0) + variant
        gross = basic + allowances + subsidies + bonus
        social = social_share(gross) + (social_slips or {}).get(index, 0)
        housing, tax = gross * 12 // 100, 45_00 + index
        dues = union_dues_fen(base_fen=basic, rate_bp=50) if wallet.holder_person.resident_id in union_members else 0
        net = gross - social - housing - tax - dues
        amounts = [basic, allowances, subsidies, bonus, 0, gross, social, housing, tax, dues, 0, net]
        row = [employee_no(wallet), wallet.holder_name, wallet.holder_person.resident_id, wallet.wallet_id]
        row += [f"{a // 100}.{a % 100:02d}" for a in amounts]
        for column, value in (spoil or {}).get(index, {}).items():
            row[column] = value
        rows.append(row)
    total = sum(int(r[-1].replace(".", "")) for r in rows)
    header = [["单位统一社会信用代码", employer.uscc], ["工资所属期", period], ["总笔数", str(len(rows))],
              ["实发合计", f"{total // 100}.{total % 100:02d}"], []]
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(header + [TEMPLATE_COLUMNS] + rows)
    return buffer.getvalue().encode("utf-8-sig")


def payee_csv(payees: list[tuple[str, str, str]], *, amount_fen: int, memo: str) -> bytes:
    """A subsidy payee file (fiscal_disbursement/PAYEES.md): (name, resident ID or credit code, wallet id)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["序号", "收款人", "证件号码", "钱包编号", "金额", "用途"])
    for n, (name, id_number, wallet_id) in enumerate(payees, start=1):
        writer.writerow([n, name, id_number, wallet_id, f"{amount_fen // 100}.{amount_fen % 100:02d}", memo])
    return buffer.getvalue().encode("utf-8-sig")


@dataclass
class DemoWorld:
    orgs: dict[str, Organization] = field(default_factory=dict)
    wallets: dict[str, Wallet] = field(default_factory=dict)
    employees_a: list[Wallet] = field(default_factory=list)
    employees_b: list[Wallet] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)
    individuals: dict[str, Wallet] = field(default_factory=dict)  # username -> their personal wallet


ORGS = [
    # key, type, name, USCC body (17), institution code
    ("operator", Organization.Type.OPERATOR_BANK, "示范银行济南分行（数字人民币运营机构）", "91370100MA3C00001", "001"),
    ("treasury", Organization.Type.TREASURY, "国家金库济南市中心支库", "11370100MB0000001", "3701000000"),
    ("finance", Organization.Type.FINANCE_BUREAU, "济南市财政局", "11370100MB0000002", ""),
    ("tax", Organization.Type.TAX_AUTHORITY, "国家税务总局济南市税务局", "11370100MB0000003", "13701000000"),
    ("social", Organization.Type.SOCIAL_INSURANCE_AGENCY, "济南市社会保险事业中心", "12370100MB0000004", ""),
    ("union", Organization.Type.UNION, "济南示范科技有限公司工会委员会", "81370100MC0000005", ""),
    ("city_union", Organization.Type.UNION, "济南市总工会", "81370100MC0000009", ""),
    ("school", Organization.Type.BUDGET_UNIT, "济南市第一中学", "12370100MB0000006", ""),
    # The budget unit whose quotas the sandbox budget system holds (adapters/budget/sandbox/seed.py).
    ("civil_affairs", Organization.Type.BUDGET_UNIT, "市民政局", "11370100MB0000010", "101001"),
    ("employer_a", Organization.Type.EMPLOYER, "济南示范科技有限公司", "91370100MA3C00007", ""),
    ("employer_b", Organization.Type.EMPLOYER, "济南明远物流有限公司", "91370100MA3C00008", ""),
]

USERS = [
    # username, role, organization key
    ("clerk", roles.FINANCE_CLERK, "finance"),
    ("approver", roles.FINANCE_APPROVER, "finance"),
    ("tax", roles.TAX_STAFF, "tax"),
    ("tax_ap", roles.TAX_STAFF, "tax"),  # approves the refunds `tax` reviews (maker-checker)
    ("emp_a_op", roles.EMPLOYER_OPERATOR, "employer_a"),
    ("emp_a_ap", roles.EMPLOYER_APPROVER, "employer_a"),
    ("emp_b_op", roles.EMPLOYER_OPERATOR, "employer_b"),
    ("auditor", roles.AUDITOR, "finance"),
    ("admin", roles.ADMIN, "finance"),
]


# People who log in as themselves (role individual): username, wallet serial. Each gets a personal wallet in
# their name; the demo enrols them in flexible-employment insurance.
INDIVIDUALS = [("flex", 2001)]


def load_demo_world(*, employees_a: int = 40, employees_b: int = 10, password: str | None = None) -> DemoWorld:
    """Create (or find) the demo organizations, users and wallets in the service's database. Idempotent."""
    world = DemoWorld()
    with transaction.atomic():
        for key, org_type, name, body, code in ORGS:
            world.orgs[key] = register_organization(name=name, org_type=org_type, uscc=make_uscc(body), code=code)
        operator = world.orgs["operator"]

        corporate = [
            ("treasury_single", wallet_number(0, 1), "treasury", LedgerAccount.Kind.TREASURY_SINGLE),
            ("fiscal_zero_balance", wallet_number(0, 2), "finance", LedgerAccount.Kind.FISCAL_ZERO_BALANCE),
            ("school_zero_balance", wallet_number(0, 3), "school", LedgerAccount.Kind.UNIT_ZERO_BALANCE),
            ("civil_affairs_zero_balance", wallet_number(0, 4), "civil_affairs", LedgerAccount.Kind.UNIT_ZERO_BALANCE),
            ("employer_a", wallet_number(0, 11), "employer_a", LedgerAccount.Kind.WALLET),
            ("employer_b", wallet_number(0, 12), "employer_b", LedgerAccount.Kind.WALLET),
            ("union", wallet_number(0, 13), "union", LedgerAccount.Kind.WALLET),
            ("city_union", wallet_number(0, 15), "city_union", LedgerAccount.Kind.WALLET),
            ("social", wallet_number(0, 14), "social", LedgerAccount.Kind.WALLET),
        ]
        for key, number, org_key, kind in corporate:
            wallet = Wallet.objects.filter(wallet_id=number).first() or register_wallet(
                wallet_id=number, wallet_type=Wallet.Type.CORPORATE, operator=operator,
                holder_org=world.orgs[org_key], holder_name=world.orgs[org_key].name, account_kind=kind,
            )
            world.wallets[key] = wallet

        def person_wallet(serial: int) -> Wallet:
            number = wallet_number(1, serial)
            existing = Wallet.objects.filter(wallet_id=number).first()
            if existing:
                return existing
            name = SURNAMES[serial % len(SURNAMES)] + GIVEN[(serial * 7) % len(GIVEN)]
            # Born 1983-2002: the district code 370102 exists from 1983 (an earlier birth would be warned about).
            resident_id = make_resident_id("370102", f"{1983 + serial % 20}0{1 + serial % 9}1{serial % 9}", serial)
            person, _ = register_person(name=name, resident_id=resident_id)
            # Mostly class 2; every tenth a class 4 (anonymous, small limits) to show limit refusals.
            wallet_class = 4 if serial % 10 == 0 else 2
            return register_wallet(
                wallet_id=number, wallet_type=Wallet.Type.PERSONAL, wallet_class=wallet_class, operator=operator,
                holder_person=person, holder_name=person.name,
            )

        world.employees_a = [person_wallet(i) for i in range(1, employees_a + 1)]
        world.employees_b = [person_wallet(i) for i in range(1001, 1001 + employees_b)]

        # Employer A's grassroots union: dues withheld in payroll, 2% funds, 60% kept.
        settings_row, _ = UnionSettings.objects.get_or_create(
            union=world.orgs["union"],
            defaults={"employer": world.orgs["employer_a"], "wallet": world.wallets["union"],
                      "higher_union_wallet": world.wallets["city_union"]},
        )
        for wallet in world.employees_a[:20]:
            UnionMember.objects.get_or_create(
                union=settings_row, resident_id=wallet.holder_person.resident_id,
                defaults={"name": wallet.holder_name, "wallet_id": wallet.wallet_id, "employee_no": employee_no(wallet)},
            )

        password = password or secrets.token_urlsafe(9)
        User = get_user_model()
        for username, role, org_key in USERS:
            user, _ = User.objects.get_or_create(username=username)
            # Demo users get a fresh password on every run (printed by the demo); never in production.
            user.set_password(password)
            user.is_staff = role == roles.ADMIN
            user.is_superuser = role == roles.ADMIN
            user.save()
            world.passwords[username] = password
            user.groups.add(Group.objects.get_or_create(name=role)[0])  # made by access 0002; again after a flush
            Membership.objects.update_or_create(user=user, defaults={"organization": world.orgs[org_key]})
        for username, serial in INDIVIDUALS:
            wallet = person_wallet(serial)
            user, _ = User.objects.get_or_create(username=username)
            user.set_password(password)
            user.save()
            world.passwords[username] = password
            user.groups.add(Group.objects.get_or_create(name=roles.INDIVIDUAL)[0])
            PersonalAccount.objects.update_or_create(user=user, defaults={"person": wallet.holder_person})
            world.individuals[username] = wallet
        # Premiums of the sample city (370100, loaded with the rules), employers' and flexible payers', are
        # collected by the tax authority into the social-insurance fund's wallet.
        from social_security.models import FundAccount, Region

        region = Region.objects.filter(code="370100").first()
        if region is not None:
            FundAccount.objects.get_or_create(region=region, defaults={
                "tax_authority": world.orgs["tax"], "wallet": world.wallets["social"]})
    return world
