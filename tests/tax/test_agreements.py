import pytest
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from tax import services
from tax.models import AgreementState as A
from tax.models import TaxAgreement
from tests.tax.helpers import verification
from treasury.access.errors import AccessDenied
from treasury.trace.models import TraceEvent


def test_sign_verify_activates_and_staff_suspend_resume_revoke(tax):
    payer = tax.taxpayer()
    agreement = tax.sign(payer)
    assert agreement.state == A.PENDING
    assert agreement.wallet.wallet_id == payer.wallet_id and agreement.taxpayer_kind == "organization"

    reply = services.handle_agreement_verification(message=verification(agreement), now=timezone.now())
    assert (reply.vc_result, reply.add_word) == ("0", "验证通过 (verified)")
    agreement.refresh_from_db()
    assert agreement.state == A.ACTIVE  # verified, and activated at once (TAX_AGREEMENT_ACTIVATE_ON_VERIFY)
    # Asked again: the same answer, nothing moves.
    assert services.handle_agreement_verification(message=verification(agreement), now=timezone.now()).vc_result == "0"

    now = timezone.now()
    services.suspend_agreement(agreement_id=agreement.pk, user=tax.staff, reason="纳税人申请暂停", now=now)
    with pytest.raises(TransitionNotAllowed):
        services.suspend_agreement(agreement_id=agreement.pk, user=tax.staff, reason="again", now=now)
    services.resume_agreement(agreement_id=agreement.pk, user=tax.staff, reason="恢复", now=now)
    with pytest.raises(services.TaxError) as exc:
        services.revoke_agreement(agreement_id=agreement.pk, user=tax.staff, reason=" ", now=now)
    assert exc.value.code == "reason_required"
    revoked = services.revoke_agreement(agreement_id=agreement.pk, user=tax.staff, reason="解约", now=now)
    assert revoked.state == A.REVOKED
    with pytest.raises(TransitionNotAllowed):
        services.resume_agreement(agreement_id=agreement.pk, user=tax.staff, reason="x", now=now)
    kinds = list(TraceEvent.objects.filter(stream_key=agreement.stream_key).order_by("seq").values_list("kind", flat=True))
    assert kinds == ["tax.agreement.signed", "tax.agreement.verification_passed", "tax.agreement.verified",
                     "tax.agreement.activated", "tax.agreement.verification_passed", "tax.agreement.suspended",
                     "tax.agreement.resumed", "tax.agreement.revoked"]
    # Once revoked, the taxpayer may sign again.
    assert tax.sign(payer).state == A.PENDING


def test_illegal_transitions_and_protected_state(tax):
    agreement = tax.sign(tax.taxpayer())
    now = timezone.now()
    for action in (services.suspend_agreement, services.resume_agreement):
        with pytest.raises(TransitionNotAllowed):
            action(agreement_id=agreement.pk, user=tax.staff, reason="x", now=now)
    with pytest.raises(TransitionNotAllowed):
        services.activate_agreement(agreement_id=agreement.pk, user=tax.staff, now=now)  # not verified yet
    with pytest.raises(AttributeError):
        agreement.state = A.ACTIVE


def test_manual_activation_when_not_automatic(tax, settings):
    settings.TAX_AGREEMENT_ACTIVATE_ON_VERIFY = False
    agreement = tax.sign(tax.taxpayer())
    services.handle_agreement_verification(message=verification(agreement), now=timezone.now())
    agreement.refresh_from_db()
    assert agreement.state == A.VERIFIED
    assert services.activate_agreement(agreement_id=agreement.pk, user=tax.staff, now=timezone.now()).state == A.ACTIVE


@pytest.mark.parametrize("state_after", ["pending", "active", "suspended"])
def test_re_signing_is_refused_while_an_agreement_is_open(tax, state_after):
    payer = tax.taxpayer(personal=True)
    agreement = tax.sign(payer)
    assert agreement.taxpayer_kind == "person"
    if state_after != "pending":
        services.handle_agreement_verification(message=verification(agreement), now=timezone.now())
    if state_after == "suspended":
        services.suspend_agreement(agreement_id=agreement.pk, user=tax.staff, reason="暂停", now=timezone.now())
    with pytest.raises(services.TaxError) as exc:
        tax.sign(payer)
    assert exc.value.code == "already_signed"
    assert TaxAgreement.objects.count() == 1


def test_holder_mismatch_bad_ids_and_taken_numbers_are_refused(tax):
    payer = tax.taxpayer()
    someone_else = tax.taxpayer(name="别人的公司")
    with pytest.raises(services.TaxError) as exc:
        services.sign_agreement(user=tax.staff, tax_org_code="13701000000", taxpayer_id=payer.taxpayer_id,
                                taxpayer_name=payer.name, wallet_id=someone_else.wallet_id, protocol_no="X1",
                                signed_date=timezone.now().date(), now=timezone.now())
    assert exc.value.code == "holder_mismatch"
    with pytest.raises(services.TaxError) as exc:
        services.sign_agreement(user=tax.staff, tax_org_code="13701000000", taxpayer_id=payer.taxpayer_id[:-1] + "0"
                                if payer.taxpayer_id[-1] != "0" else payer.taxpayer_id[:-1] + "1",
                                taxpayer_name=payer.name, wallet_id=payer.wallet_id, protocol_no="X1",
                                signed_date=timezone.now().date(), now=timezone.now())
    assert exc.value.code.startswith("uscc")
    tax.sign(payer, protocol_no="SAME")
    with pytest.raises(services.TaxError) as exc:
        tax.sign(someone_else, protocol_no="SAME")
    assert exc.value.code == "protocol_taken"
    with pytest.raises(AccessDenied):
        services.sign_agreement(user=tax.other_staff, tax_org_code="13701000000", taxpayer_id=payer.taxpayer_id,
                                taxpayer_name=payer.name, wallet_id=payer.wallet_id, protocol_no="X2",
                                signed_date=timezone.now().date(), now=timezone.now())


def test_verification_fails_on_any_mismatch_and_delete_revokes(tax):
    agreement = tax.sign(tax.taxpayer())
    reply = services.handle_agreement_verification(
        message=verification(agreement, pay_acct="3009999999999999"), now=timezone.now())
    assert reply.vc_result == "1" and "PayAcct" in reply.add_word
    reply = services.handle_agreement_verification(
        message=verification(agreement, tax_pay_name="另一家公司"), now=timezone.now())
    assert reply.vc_result == "1" and "TaxPayName" in reply.add_word
    agreement.refresh_from_db()
    assert agreement.state == A.PENDING and agreement.last_verification_result == "1"
    missing = services.handle_agreement_verification(
        message=verification(agreement, protocol_no="NOPE"), now=timezone.now())
    assert missing.vc_result == "1"

    reply = services.handle_agreement_verification(message=verification(agreement, vc_sign="1"), now=timezone.now())
    assert reply.vc_result == "0"
    agreement.refresh_from_db()
    assert agreement.state == A.REVOKED
    # Verifying a deleted agreement fails; deleting again is answered the same.
    assert services.handle_agreement_verification(message=verification(agreement), now=timezone.now()).vc_result == "1"
    assert services.handle_agreement_verification(message=verification(agreement, vc_sign="1"),
                                                  now=timezone.now()).vc_result == "0"
