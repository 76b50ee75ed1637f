"""Parties (organizations, persons) and their e-CNY wallets."""
from django.core.exceptions import ValidationError
from django.db import models

from treasury import identifiers


class Organization(models.Model):
    class Type(models.TextChoices):
        FINANCE_BUREAU = "finance_bureau", "财政局 (finance bureau)"
        BUDGET_UNIT = "budget_unit", "预算单位 (budget unit)"
        EMPLOYER = "employer", "用人单位 (employer)"
        TAX_AUTHORITY = "tax_authority", "税务机关 (tax authority)"
        TREASURY = "treasury", "国库 (treasury)"
        SOCIAL_INSURANCE_AGENCY = "social_insurance_agency", "社保经办机构 (social-insurance agency)"
        UNION = "union", "工会 (union)"
        OPERATOR_BANK = "operator_bank", "运营机构 (e-CNY operator bank)"

    name = models.CharField("名称 (name)", max_length=200)
    org_type = models.CharField("类型 (type)", max_length=32, choices=Type.choices)
    uscc = models.CharField(
        "统一社会信用代码 (unified social credit code)",
        max_length=18,
        unique=True,
        validators=[identifiers.validate_uscc_field],
    )
    # Other codes by type: treasury code (10), tax authority code (11), CNAPS bank code (12),
    # operator prefix of wallet ids (3).
    code = models.CharField("机构代码 (institution code)", max_length=20, blank=True, db_index=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "机构 (organization)"
        verbose_name_plural = "机构 (organizations)"

    def __str__(self) -> str:
        return self.name


class Person(models.Model):
    name = models.CharField("姓名 (name)", max_length=100)
    # Unique by a constraint (Meta), not unique=True: that would add a LIKE-pattern index nobody uses,
    # paid on every insert (payroll registers a whole file's payees at once).
    resident_id = models.CharField(
        "公民身份号码 (resident ID number)",
        max_length=18,
        validators=[identifiers.validate_resident_id_field],
    )
    mobile = models.CharField("手机 (mobile)", max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "个人 (person)"
        verbose_name_plural = "个人 (people)"
        constraints = [models.UniqueConstraint(fields=["resident_id"], name="person_resident_id_unique")]

    def __str__(self) -> str:
        return f"{identifiers.mask_name(self.name)} {identifiers.mask_resident_id(self.resident_id)}"


class Wallet(models.Model):
    class Type(models.TextChoices):
        PERSONAL = "WT01", "个人钱包 (personal)"
        PERSONAL_SUB = "WT02", "个人子钱包 (personal sub-wallet)"
        HARDWARE = "WT03", "硬钱包 (hardware)"
        CORPORATE = "WT09", "对公钱包 (corporate)"
        CORPORATE_SUB = "WT10", "对公子钱包 (corporate sub-wallet)"

    class Status(models.TextChoices):
        ACTIVE = "active", "正常 (active)"
        FROZEN = "frozen", "冻结 (frozen)"
        CLOSED = "closed", "注销 (closed)"

    # Unique by a constraint (Meta), as Person.resident_id; holders indexed only where set (Meta).
    wallet_id = models.CharField("钱包编号 (wallet id)", max_length=16, validators=[identifiers.validate_wallet_id_field])
    wallet_type = models.CharField("钱包类型 (type)", max_length=4, choices=Type.choices)
    # 1-4 for personal wallets (strength of identity); corporate limits are agreed with the operator.
    wallet_class = models.PositiveSmallIntegerField("钱包等级 (class)", null=True, blank=True)
    operator = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="operated_wallets", verbose_name="运营机构 (operator)"
    )
    holder_org = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="wallets", db_index=False
    )
    holder_person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.PROTECT, related_name="wallets",
                                      db_index=False)
    holder_name = models.CharField("户名 (holder name)", max_length=200)
    status = models.CharField("状态 (status)", max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "数字人民币钱包 (e-CNY wallet)"
        verbose_name_plural = "数字人民币钱包 (e-CNY wallets)"
        indexes = [
            models.Index(fields=["holder_org"], name="wallet_holder_org", condition=models.Q(holder_org__isnull=False)),
            models.Index(fields=["holder_person"], name="wallet_holder_person",
                         condition=models.Q(holder_person__isnull=False)),
        ]
        constraints = [
            models.UniqueConstraint(fields=["wallet_id"], name="wallet_id_unique"),
            models.CheckConstraint(
                name="wallet_exactly_one_holder",
                condition=(
                    models.Q(holder_org__isnull=False, holder_person__isnull=True)
                    | models.Q(holder_org__isnull=True, holder_person__isnull=False)
                ),
            ),
            models.CheckConstraint(
                name="wallet_class_1_to_4",
                condition=models.Q(wallet_class__isnull=True) | models.Q(wallet_class__gte=1, wallet_class__lte=4),
            ),
        ]

    def __str__(self) -> str:
        return f"{identifiers.mask_wallet_id(self.wallet_id)} {self.masked_holder_name}"

    @property
    def is_personal(self) -> bool:
        return self.wallet_type in (self.Type.PERSONAL, self.Type.PERSONAL_SUB, self.Type.HARDWARE)

    @property
    def masked_holder_name(self) -> str:
        return identifiers.mask_name(self.holder_name) if self.is_personal else self.holder_name

    @property
    def masked_wallet_id(self) -> str:
        return identifiers.mask_wallet_id(self.wallet_id)

    def clean(self):
        if self.is_personal and self.wallet_class is None:
            raise ValidationError({"wallet_class": "个人钱包必须有等级 (a personal wallet needs a class 1-4)"})
