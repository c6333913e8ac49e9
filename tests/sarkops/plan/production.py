"""What the production stack's plan is known to report on this branch, for tests that plan it whole.

The target group's auto-name is too long for AWS (``sark-production-lb-v0-1-0-tg`` plus ``-`` and
7 characters is 36 > 32), so the provider's Check refuses it and a real preview fails: the plan
reports it and exits 1. Issue #11 shortens the name in components/; when that lands this list
becomes empty and the plan exits 0 again (the backup selection's generated name is exactly 50
characters, AWS's limit, so it passes).
"""

from __future__ import annotations

KNOWN_CHECK_FAILURES = [{
    "urn": "urn:pulumi:production::sark-infra::sark:loadbalancer:LoadBalancer$aws:lb/targetGroup:TargetGroup::"
           "sark-production-lb-v0-1-0-tg",
    "type": "aws:lb/targetGroup:TargetGroup",
    "property": "name",
    "message": "could not make instance of 'aws:lb/targetGroup:TargetGroup': name 'sark-production-lb-v0-1-0-tg-' "
               "plus 7 random chars is longer than maximum length 32",
}]
"""Exactly the check failures of ``sarkops plan --stack production`` (fixed by issue #11)."""

EXPECTED_STATUS = 1 if KNOWN_CHECK_FAILURES else 0
"""``sarkops plan``'s exit status for production: 1 while the check failures above exist."""
