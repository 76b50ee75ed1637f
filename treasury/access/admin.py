from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

from .forms import AdminPasswordChangeForm
from .models import LoginFailure, Membership, PersonalAccount


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
    change_password_form = AdminPasswordChangeForm  # a new password ends the user's API token
    list_display = [*UserAdmin.list_display, "organization"]
    list_select_related = ["membership__organization"]

    @admin.display(description="所属机构 (organization)")
    def organization(self, obj):
        membership = getattr(obj, "membership", None)
        return membership.organization if membership else "—"


@admin.register(LoginFailure)
class LoginFailureAdmin(admin.ModelAdmin):
    """Failed sign-ins that count toward the sign-in lock; deleting a user's unlocks them (login_lock.py)."""

    list_display = ["username", "at", "ip"]
    search_fields = ["username"]
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
