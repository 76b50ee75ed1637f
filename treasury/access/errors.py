class AccessDenied(PermissionError):
    """The user may not do this. `code` is for API clients; the message is for people."""

    def __init__(self, message: str, code: str = "access_denied"):
        super().__init__(message)
        self.code = code


class MakerCheckerViolation(AccessDenied):
    def __init__(self, message: str = "经办人不能审批自己准备的业务 (whoever prepared this cannot approve it)"):
        super().__init__(message, code="maker_checker")


class ReadOnlyRole(AccessDenied):
    def __init__(self, message: str = "审计人员只读，不能修改数据 (auditors are read-only)"):
        super().__init__(message, code="read_only_role")
