"""The CrossGuard pack: `pulumi preview --policy-pack policies`. Only constructs the PolicyPack."""

from pulumi_policy import EnforcementLevel, PolicyPack

from sark_policies import POLICIES

PolicyPack(
    name="sark-policies",
    # Each rule sets its own level; anything that forgets falls back to advisory, as AWSGuard does.
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=POLICIES,
)
