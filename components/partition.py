"""The stack's AWS partition (`aws`, `aws-us-gov`, `aws-cn`) for ARNs built by hand.

An ARN written with the commercial partition (`aws`) does not exist in GovCloud or China: the apply fails. Every
hand-built ARN takes its partition from `aws.get_partition_output()` instead, invoked once per program
run (keyed by the run's root Stack resource, like BakedImage's AMI lookups) and shared by every group.
"""

from __future__ import annotations

import weakref

import pulumi
import pulumi_aws as aws

_PARTITIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def stack_partition() -> pulumi.Output[str]:
    root = pulumi.runtime.get_root_resource()
    if root is None:
        return aws.get_partition_output().partition
    if root not in _PARTITIONS:
        _PARTITIONS[root] = aws.get_partition_output().partition
    return _PARTITIONS[root]


def aws_managed_policy_arn(partition: str, name: str) -> str:
    """`arn:<partition>:iam::aws:policy/<name>`: an AWS managed policy in the stack's partition."""
    return f"arn:{partition}:iam::aws:policy/{name}"
