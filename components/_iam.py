"""IAM documents shared by the components."""

from __future__ import annotations

import json


def assume_role_policy(service: str) -> str:
    """Trust policy letting one AWS service principal (e.g. ``ec2.amazonaws.com``) assume a role."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    })


SSM_AGENT_ACTIONS: tuple[str, ...] = (
    # Registration, Run Command and State Manager: what AmazonSSMManagedInstanceCore grants
    # the agent, minus ssm:GetParameter(s) on "*" (hosts read only their stack's parameters,
    # granted separately by path).
    "ssm:DescribeAssociation",
    "ssm:DescribeDocument",
    "ssm:GetDeployablePatchSnapshotForInstance",
    "ssm:GetDocument",
    "ssm:GetManifest",
    "ssm:ListAssociations",
    "ssm:ListInstanceAssociations",
    "ssm:PutComplianceItems",
    "ssm:PutConfigurePackageResult",
    "ssm:PutInventory",
    "ssm:UpdateAssociationStatus",
    "ssm:UpdateInstanceAssociationStatus",
    "ssm:UpdateInstanceInformation",
)
SESSION_MANAGER_ACTIONS: tuple[str, ...] = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)
RUN_COMMAND_ACTIONS: tuple[str, ...] = (
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
)


def ssm_agent_policy() -> str:
    """The SSM agent's permissions (Session Manager, Run Command), without reading parameters.

    Replaces the AWS managed policy AmazonSSMManagedInstanceCore, whose
    ``ssm:GetParameter``/``ssm:GetParameters`` on ``*`` would let a host read every parameter
    in the account. The other actions are that policy's (AWS managed policy reference,
    "AmazonSSMManagedInstanceCore", version 3); they act on the instance itself or on
    documents and messages addressed to it, so AWS defines no narrower resource for them.
    """
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "SsmAgent", "Effect": "Allow", "Action": list(SSM_AGENT_ACTIONS), "Resource": "*"},
            {"Sid": "SessionManager", "Effect": "Allow", "Action": list(SESSION_MANAGER_ACTIONS), "Resource": "*"},
            {"Sid": "RunCommand", "Effect": "Allow", "Action": list(RUN_COMMAND_ACTIONS), "Resource": "*"},
        ],
    }, indent=2)
