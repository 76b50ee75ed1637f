"""The union's member and rules pages in both languages: the page's own words follow the language switch;
names, the import file's column headers and the members' problems are data and stay as they are."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.clients import logged_in
from tests.payroll.helpers import staff
from tests.payroll.test_union import members_for

pytestmark = pytest.mark.django_db(transaction=True)

# The page's own words, (English, Chinese), on the members, edit, import and rules pages.
MEMBERS = [("Add a member", "添加会员"), ("Import from CSV", "批量导入"), ("Deactivate", "停用"),
           ("Reactivate", "恢复"), ("Name or employee no.", "姓名或工号"),
           ("members are never deleted.", "会员不会被删除。")]
EDIT = [("Edit member", "修改会员"), ("The resident ID is not edited.", "身份证号不可修改。"),
        ("e-CNY wallet id", "数字人民币钱包编号"), ("Dues base (yuan)", "会费基数（元）"),
        ("it is checked with the operator.", "提交时向运营机构核验。"), (">Save<", ">保存<")]
IMPORT = [("Import members", "批量导入会员"), ("Member list (CSV)", "会员名单 (CSV)"),
          ("Nothing imported: 1 problem", "未导入：1 处问题"), ("Blank template (CSV)", "空白模板 (CSV)")]
RULES = [("Union rules", "工会规则"), ("Dues rate (%)", "会费比例 %"), ("Basic wage", "基本工资"),
         ("Dues deducted in the payroll run", "会费随工资代扣"), ("Changes apply to payroll runs", "修改自下一次发放")]


def pages(client, union, member) -> dict[str, str]:
    missing_column = "工号,姓名,身份证号,会费基数,代扣授权\n".encode()  # no wallet column: one problem
    imported = client.post(reverse("payroll:union-members-import", args=[union.pk]),
                           {"file": SimpleUploadedFile("会员.csv", missing_column, content_type="text/csv")})
    return {
        "members": client.get(reverse("payroll:union-members", args=[union.pk])).content.decode(),
        "edit": client.get(reverse("payroll:union-member-edit", args=[union.pk, member.pk])).content.decode(),
        "import": imported.content.decode(),
        "rules": client.get(reverse("payroll:union-rules", args=[union.pk])).content.decode(),
    }


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_member_and_rules_pages_follow_the_language(employer, grassroots, language):
    active, inactive = members_for(grassroots, staff(employer, 2))
    inactive.active = False
    inactive.save(update_fields=["active"])
    client = logged_in(employer.operator_user)
    client.cookies["django_language"] = language
    shown = pages(client, grassroots, inactive)
    english = language == "en"
    for page, texts in (("members", MEMBERS), ("edit", EDIT), ("import", IMPORT), ("rules", RULES)):
        for en, zh in texts:
            assert (en if english else zh) in shown[page], (page, en)
            assert (zh if english else en) not in shown[page], (page, zh)
    # Data stays as it is: the file's column headers, the member's name, the problem's bilingual reason.
    assert "工号, 姓名, 身份证号, 钱包编号, 会费基数, 代扣授权" in shown["import"]
    assert "缺少“钱包编号”列" in shown["import"] and inactive.name in shown["edit"]
    assert 'data-testid="member-deactivated"' in shown["edit"]


@pytest.mark.parametrize("language, text", [("en", "deactivated: no more dues are taken"), ("zh-hans", "已停用：不再收取会费")])
def test_a_member_message_follows_the_language(employer, grassroots, language, text):
    (member,) = members_for(grassroots, staff(employer, 1))
    client = logged_in(employer.operator_user)
    client.cookies["django_language"] = language
    response = client.post(reverse("payroll:union-member-active", args=[grassroots.pk, member.pk]), {"active": "0"},
                           follow=True)
    assert any(text in str(m) and member.name in str(m) for m in response.context["messages"])
