"""Run by tests/demo/test_demo_command.py after `manage.py demo`, in the demo's environment (its VAR_DIR and
database): signs in as every demo user, follows every link and API answer they can reach (tests.crawl), and
prints what it found as JSON for the test to judge:

- "failed": pages that answered 400 or 5xx to a GET;
- "whole": personal data shown whole where the role should see it masked. Officials (tax and finance staff,
  auditors, administrators) and the individual taxpayer never see anyone's resident ID or personal wallet id
  whole (an individual's own wallet is theirs to see); an employer never sees the other employer's name or
  wallets, nor the people only the other employer pays;
- "pages": how many pages each user reached.
"""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402

from payroll.models import PayrollLine  # noqa: E402
from tests.crawl import crawl  # noqa: E402
from treasury.access.scoping import individual_person, user_organization  # noqa: E402
from treasury.models import Organization, Person, Wallet  # noqa: E402

settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
STARTS = ["/", "/transfers/", "/trace/", "/api/v1/transfers/", "/api/v1/wallets/", "/api/v1/tax/agreements/",
          "/api/v1/tax/deductions/", "/api/v1/tips/messages/", "/api/v1/budget/messages/", "/api/v1/payroll/batches/",
          "/api/v1/fiscal/requests/", "/api/v1/social/declarations/", "/api/v1/social/flexible/payments/"]
OFFICIALS = ["tax", "tax_ap", "clerk", "approver", "auditor", "admin"]
EMPLOYERS = ["emp_a_op", "emp_a_ap", "emp_b_op"]


def personal_data(people) -> dict[str, str]:
    """{value: what it is} of these people's resident IDs and personal wallets."""
    found = {p.resident_id: f"resident ID of {p.pk}" for p in people}
    for wallet in Wallet.objects.filter(holder_person__in=people):
        found[wallet.wallet_id] = f"wallet of person {wallet.holder_person_id}"
    return found


def main() -> None:
    users = {user.username: user for user in get_user_model().objects.all()}
    everyone = list(Person.objects.all())
    result = {"failed": [], "whole": [], "pages": {}}
    for username in OFFICIALS + EMPLOYERS + ["flex"]:
        user = users[username]
        client = Client()
        client.force_login(user)
        pages = crawl(client, STARTS, limit=300)
        result["pages"][username] = len(pages)
        result["failed"] += [(username, url, page.status) for url, page in pages.items()
                             if page.status == 400 or page.status >= 500]
        if username in EMPLOYERS:
            mine = user_organization(user)
            other = Organization.objects.filter(org_type=Organization.Type.EMPLOYER).exclude(pk=mine.pk).get()
            theirs = set(PayrollLine.objects.filter(batch__employer=other).values_list("resident_id", flat=True))
            ours = set(PayrollLine.objects.filter(batch__employer=mine).values_list("resident_id", flat=True))
            hidden = personal_data([p for p in everyone if p.resident_id in theirs - ours])
            hidden[other.name] = "the other employer's name"
            hidden.update({w: "the other employer's wallet" for w in
                           Wallet.objects.filter(holder_org=other).values_list("wallet_id", flat=True)})
        else:  # an individual may see their own ID and wallet whole
            own = individual_person(user)
            hidden = personal_data([p for p in everyone if p != own])
        result["whole"] += [(username, what, url) for url, page in pages.items()
                            for value, what in hidden.items() if value in page.body]
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
