"""One place to acknowledge cdk-nag findings, so every acknowledgement carries a reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, reason: str, *rule_ids: str) -> None:
    """Acknowledge each cdk-nag finding id (e.g. `AwsSolutions-IAM5[Resource::*]`) on `construct`."""
    if not reason.strip():
        raise ValueError("a cdk-nag acknowledgement needs a reason")
    Validations.of(construct).acknowledge(*(Acknowledgment(id=rule_id, reason=reason) for rule_id in rule_ids))
