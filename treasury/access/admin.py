from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

from .models import Membership, PersonalAccount


class MembershipInline(admin.StackedInline):
    model = Membership
    can_delete = True
    extra = 0
    max_num = 1
    raw_id_fields = ["organization"]
    verbose_name_plural = "所属机构 (membership)"


class PersonalAccountInline(admin.StackedInline):
    """The person a user stands for when they log in as themselves (role individual)."""

    model = PersonalAccount
    can_delete = True
    extra = 0
    max_num = 1
    raw_id_fields = ["person"]
    verbose_name_plural = "个人用户 (personal account)"


admin.site.unregister(User)


@admin.register(User)
class UserWithMembershipAdmin(UserAdmin):
    inlines = [*UserAdmin.inlines, MembershipInline, PersonalAccountInline]
    list_display = [*UserAdmin.list_display, "organization"]
    list_select_related = ["membership__organization"]

    @admin.display(description="所属机构 (organization)")
    def organization(self, obj):
        membership = getattr(obj, "membership", None)
        return membership.organization if membership else "—"
