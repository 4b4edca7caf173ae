"""`fleet iam deployer`: the IAM policy of the role that runs `pulumi up` (the deploy workflow's role).

Generated from three tables, one per kind of caller; extend the table beside the code you change:
- RESOURCES: what the aws provider calls to create, read, update and delete each resource type the
  program registers (tests: every type in the plan of both stacks has a row);
- INVOKES: the provider functions the program calls during a preview or an update;
- CALLS: what fleet's own code calls on the deploy path (the Commands: image build, rollout, health
  gate; the workflow's `fleet lock --check`), what Packer's amazon-ebs builder calls (its documented
  minimal policy) and the EBS direct APIs of raw uploads. tests/test_iam_deployer.py records every AWS
  call the test suite's deploy paths make (botocore's before-call event) and fails on any call this
  policy does not allow, naming the row to add.

Reads that the provider makes differently from one release to the next are granted as `Describe*` of
that service (metadata only, never data). Writes are listed one by one. `iam:PassRole` is limited to
the services the program hands roles to, and `iam:CreateServiceLinkedRole` to the service-linked roles
a first deploy in a new account creates (Auto Scaling, Elastic Load Balancing, EC2 Spot).
"""

from __future__ import annotations

import fnmatch
import json
from typing import Iterable

# -- the aws provider, per resource type ------------------------------------------------------------
_TAGS_EC2 = ("ec2:CreateTags", "ec2:DeleteTags", "ec2:Describe*")
RESOURCES: dict[str, tuple[str, ...]] = {
    "aws:ec2/vpc:Vpc": ("ec2:CreateVpc", "ec2:DeleteVpc", "ec2:ModifyVpcAttribute", *_TAGS_EC2),
    "aws:ec2/subnet:Subnet": ("ec2:CreateSubnet", "ec2:DeleteSubnet", "ec2:ModifySubnetAttribute", *_TAGS_EC2),
    "aws:ec2/internetGateway:InternetGateway": ("ec2:CreateInternetGateway", "ec2:DeleteInternetGateway",
                                                "ec2:AttachInternetGateway", "ec2:DetachInternetGateway",
                                                *_TAGS_EC2),
    "aws:ec2/eip:Eip": ("ec2:AllocateAddress", "ec2:ReleaseAddress", "ec2:DisassociateAddress", *_TAGS_EC2),
    "aws:ec2/natGateway:NatGateway": ("ec2:CreateNatGateway", "ec2:DeleteNatGateway", *_TAGS_EC2),
    "aws:ec2/routeTable:RouteTable": ("ec2:CreateRouteTable", "ec2:DeleteRouteTable", *_TAGS_EC2),
    "aws:ec2/route:Route": ("ec2:CreateRoute", "ec2:DeleteRoute", "ec2:ReplaceRoute", "ec2:Describe*"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": (
        "ec2:AssociateRouteTable", "ec2:DisassociateRouteTable", "ec2:ReplaceRouteTableAssociation",
        "ec2:Describe*"),
    "aws:ec2/securityGroup:SecurityGroup": (
        "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "ec2:RevokeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupIngress", *_TAGS_EC2),  # the provider removes AWS's default egress rule
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
        "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:ModifySecurityGroupRules",
        *_TAGS_EC2),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (
        "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress", "ec2:ModifySecurityGroupRules",
        *_TAGS_EC2),
    "aws:ec2/launchTemplate:LaunchTemplate": (
        "ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate",
        "ec2:DeleteLaunchTemplate", "ec2:DeleteLaunchTemplateVersions", "ec2:GetLaunchTemplateData",
        "ec2:RunInstances", *_TAGS_EC2),  # RunInstances: AWS checks it when a template is validated
    "aws:ec2/instance:Instance": (
        "ec2:RunInstances", "ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances",
        "ec2:ModifyInstanceAttribute", "ec2:ModifyInstanceMetadataOptions", "iam:PassRole", *_TAGS_EC2),
    "aws:autoscaling/group:Group": (
        "autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:DeleteAutoScalingGroup", "autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags",
        "autoscaling:AttachLoadBalancerTargetGroups", "autoscaling:DetachLoadBalancerTargetGroups",
        "autoscaling:EnableMetricsCollection", "autoscaling:DisableMetricsCollection",
        "autoscaling:SuspendProcesses", "autoscaling:ResumeProcesses", "autoscaling:SetInstanceProtection",
        "autoscaling:Describe*", "ec2:RunInstances", "ec2:CreateTags", "ec2:Describe*", "iam:PassRole",
        "iam:CreateServiceLinkedRole"),
    "aws:autoscaling/policy:Policy": ("autoscaling:PutScalingPolicy", "autoscaling:DeletePolicy",
                                      "autoscaling:Describe*"),
    "aws:autoscaling/lifecycleHook:LifecycleHook": ("autoscaling:PutLifecycleHook",
                                                    "autoscaling:DeleteLifecycleHook", "autoscaling:Describe*"),
    "aws:lb/loadBalancer:LoadBalancer": (
        "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DeleteLoadBalancer",
        "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetSecurityGroups",
        "elasticloadbalancing:SetSubnets", "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
        "elasticloadbalancing:Describe*", "iam:CreateServiceLinkedRole", "ec2:Describe*"),
    "aws:lb/listener:Listener": ("elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
                                 "elasticloadbalancing:ModifyListener", "elasticloadbalancing:AddTags",
                                 "elasticloadbalancing:RemoveTags", "elasticloadbalancing:Describe*"),
    "aws:lb/listenerRule:ListenerRule": ("elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule",
                                         "elasticloadbalancing:ModifyRule", "elasticloadbalancing:SetRulePriorities",
                                         "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
                                         "elasticloadbalancing:Describe*"),
    "aws:lb/targetGroup:TargetGroup": (
        "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:DeleteTargetGroup",
        "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
        "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags", "elasticloadbalancing:Describe*"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms",
                                               "cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource",
                                               "cloudwatch:TagResource", "cloudwatch:UntagResource"),
    "aws:cloudwatch/dashboard:Dashboard": ("cloudwatch:PutDashboard", "cloudwatch:GetDashboard",
                                           "cloudwatch:DeleteDashboards"),
    "aws:cloudwatch/eventRule:EventRule": ("events:PutRule", "events:DeleteRule", "events:DescribeRule",
                                           "events:EnableRule", "events:DisableRule", "events:TagResource",
                                           "events:UntagResource", "events:ListTagsForResource"),
    "aws:cloudwatch/eventTarget:EventTarget": ("events:PutTargets", "events:RemoveTargets",
                                               "events:ListTargetsByRule"),
    "aws:cloudwatch/logGroup:LogGroup": ("logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:DescribeLogGroups",
                                         "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy",
                                         "logs:TagResource", "logs:UntagResource", "logs:ListTagsForResource"),
    "aws:dynamodb/table:Table": ("dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:UpdateTable",
                                 "dynamodb:DescribeTable", "dynamodb:DescribeContinuousBackups",
                                 "dynamodb:UpdateContinuousBackups", "dynamodb:DescribeTimeToLive",
                                 "dynamodb:UpdateTimeToLive", "dynamodb:TagResource", "dynamodb:UntagResource",
                                 "dynamodb:ListTagsOfResource"),
    "aws:lambda/function:Function": (
        "lambda:CreateFunction", "lambda:DeleteFunction", "lambda:GetFunction", "lambda:GetFunctionConfiguration",
        "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:ListVersionsByFunction",
        "lambda:GetFunctionCodeSigningConfig", "lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency",
        "lambda:TagResource", "lambda:UntagResource", "lambda:ListTags", "iam:PassRole"),
    "aws:lambda/permission:Permission": ("lambda:AddPermission", "lambda:RemovePermission", "lambda:GetPolicy"),
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": (
        "lambda:PutFunctionEventInvokeConfig", "lambda:UpdateFunctionEventInvokeConfig",
        "lambda:GetFunctionEventInvokeConfig", "lambda:DeleteFunctionEventInvokeConfig"),
    "aws:iam/role:Role": ("iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole",
                          "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole", "iam:ListRolePolicies",
                          "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole"),
    "aws:iam/rolePolicy:RolePolicy": ("iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("iam:AttachRolePolicy", "iam:DetachRolePolicy",
                                                          "iam:ListAttachedRolePolicies"),
    "aws:iam/instanceProfile:InstanceProfile": (
        "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile",
        "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:TagInstanceProfile",
        "iam:UntagInstanceProfile", "iam:PassRole"),
    "aws:kms/key:Key": ("kms:CreateKey", "kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy",
                        "kms:EnableKeyRotation", "kms:GetKeyRotationStatus", "kms:ScheduleKeyDeletion",
                        "kms:UpdateKeyDescription", "kms:ListResourceTags", "kms:TagResource",
                        "kms:UntagResource"),
    "aws:kms/keyPolicy:KeyPolicy": ("kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:DescribeKey"),
    "aws:sns/topic:Topic": ("sns:CreateTopic", "sns:DeleteTopic", "sns:GetTopicAttributes",
                            "sns:SetTopicAttributes", "sns:TagResource", "sns:UntagResource",
                            "sns:ListTagsForResource"),
    "aws:sns/topicPolicy:TopicPolicy": ("sns:SetTopicAttributes", "sns:GetTopicAttributes"),
    "aws:sqs/queue:Queue": ("sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes",
                            "sqs:SetQueueAttributes", "sqs:GetQueueUrl", "sqs:TagQueue", "sqs:UntagQueue",
                            "sqs:ListQueueTags"),
    "aws:sqs/queuePolicy:QueuePolicy": ("sqs:SetQueueAttributes", "sqs:GetQueueAttributes"),
    "aws:s3/bucket:Bucket": ("s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:GetBucket*",
                             "s3:GetAccelerateConfiguration", "s3:GetLifecycleConfiguration",
                             "s3:GetReplicationConfiguration", "s3:GetEncryptionConfiguration",
                             "s3:PutBucketTagging"),
    "aws:s3/bucketVersioning:BucketVersioning": ("s3:PutBucketVersioning", "s3:GetBucketVersioning"),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (
        "s3:PutLifecycleConfiguration", "s3:GetLifecycleConfiguration"),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ("s3:PutBucketOwnershipControls",
                                                               "s3:GetBucketOwnershipControls"),
    "aws:s3/bucketPolicy:BucketPolicy": ("s3:PutBucketPolicy", "s3:GetBucketPolicy", "s3:DeleteBucketPolicy"),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ("s3:PutBucketPublicAccessBlock",
                                                               "s3:GetBucketPublicAccessBlock"),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "s3:PutEncryptionConfiguration", "s3:GetEncryptionConfiguration"),
    "aws:s3/bucketObjectv2:BucketObjectv2": (
        "s3:PutObject", "s3:GetObject", "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:DeleteObject",
        "s3:ListBucket", "s3:ListBucketVersions", "s3:DeleteObjectVersion", "s3:GetObjectVersion"),
    "command:local:Command": (),  # runs on the deploy runner: what it calls is in CALLS
}

# -- provider functions the program invokes ---------------------------------------------------------
INVOKES: dict[str, tuple[str, ...]] = {
    "aws:index/getPartition:getPartition": (),
    "aws:index/getCallerIdentity:getCallerIdentity": ("sts:GetCallerIdentity",),
    "aws:index/getRegion:getRegion": ("ec2:DescribeRegions",),
    "aws:index/getAvailabilityZones:getAvailabilityZones": ("ec2:DescribeAvailabilityZones",),
    "aws:ec2/getAmi:getAmi": ("ec2:DescribeImages",),
    "aws:resourcegroupstaggingapi/getResources:getResources": ("tag:GetResources",),  # deployed ports
}

# -- fleet's own code on the deploy path, and Packer ------------------------------------------------
CALLS: dict[str, tuple[str, ...]] = {
    # image_builds: cache lookup, tags, retention (image_builds/registry.py, retention.py, clean.py)
    "image build and retention": (
        "ec2:Describe*", "ec2:CreateTags", "ec2:DeregisterImage", "ec2:DeleteSnapshot",
        "autoscaling:Describe*"),
    # raw builder: EBS direct APIs and RegisterImage (image_builds/ebs_upload.py, register.py)
    "raw upload": ("ebs:StartSnapshot", "ebs:PutSnapshotBlock", "ebs:CompleteSnapshot", "ebs:ListSnapshotBlocks",
                   "ebs:GetSnapshotBlock", "ec2:RegisterImage", "ec2:CreateTags", "ec2:DeleteSnapshot",
                   "ec2:DeregisterImage", "ec2:Describe*"),
    # Packer's amazon-ebs builder (its documented minimal policy)
    "packer amazon-ebs": (
        "ec2:AttachVolume", "ec2:AuthorizeSecurityGroupIngress", "ec2:CopyImage", "ec2:CreateImage",
        "ec2:CreateKeyPair", "ec2:CreateSecurityGroup", "ec2:CreateSnapshot", "ec2:CreateTags", "ec2:CreateVolume",
        "ec2:DeleteKeyPair", "ec2:DeleteSecurityGroup", "ec2:DeleteSnapshot", "ec2:DeleteVolume",
        "ec2:DeregisterImage", "ec2:Describe*", "ec2:DetachVolume", "ec2:GetPasswordData",
        "ec2:ModifyImageAttribute", "ec2:ModifyInstanceAttribute", "ec2:ModifySnapshotAttribute",
        "ec2:RegisterImage", "ec2:RunInstances", "ec2:StopInstances", "ec2:TerminateInstances"),
    # rollout and health gate Commands (fleet/ops/rollout.py, gate.py): refreshes, the launching hook
    # put or deleted first, alarms that gate them, target health
    "rollout": (
        "autoscaling:Describe*", "autoscaling:StartInstanceRefresh", "autoscaling:CancelInstanceRefresh",
        "autoscaling:RollbackInstanceRefresh", "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:SetDesiredCapacity", "autoscaling:PutLifecycleHook", "autoscaling:DeleteLifecycleHook",
        "autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags", "ec2:Describe*", "ec2:RunInstances",
        "iam:PassRole", "cloudwatch:DescribeAlarms", "cloudwatch:GetMetricData",
        "elasticloadbalancing:Describe*", "sns:Publish"),
    # blue/green rollout Command and `fleet rollback` (fleet/ops/bluegreen.py, lambdas/bluegreen/slots.py): the
    # group's lock and record in the stack's rollouts table, the rule's weights, the idle slot's size and version
    "blue/green": (
        "dynamodb:GetItem", "dynamodb:UpdateItem", "elasticloadbalancing:ModifyRule",
        "elasticloadbalancing:Describe*", "autoscaling:Describe*", "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:TerminateInstanceInAutoScalingGroup", "cloudwatch:DescribeAlarms", "ec2:Describe*",
        "elasticloadbalancing:DeregisterTargets"),
    # the deploy workflow's `fleet lock --check` (fleet/ops/lock.py) and the provider's account lookup
    "lock check": ("ec2:DescribeImages", "sts:GetCallerIdentity"),
    # reading what is deployed (fleet status and the program's port check)
    "deployed state": ("tag:GetResources", "elasticloadbalancing:Describe*", "autoscaling:Describe*"),
    # artifacts bucket objects the program replaces (bundle versions kept for rollbacks)
    "artifacts": ("s3:ListBucket", "s3:ListBucketVersions", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                  "s3:DeleteObjectVersion"),
}

# Conditions on the two IAM actions that could otherwise reach beyond the fleet.
PASS_ROLE_SERVICES = ("ec2.amazonaws.com", "lambda.amazonaws.com")
SERVICE_LINKED = ("autoscaling.amazonaws.com", "elasticloadbalancing.amazonaws.com", "spot.amazonaws.com")
CONDITIONED = {
    "iam:PassRole": {"StringEquals": {"iam:PassedToService": list(PASS_ROLE_SERVICES)}},
    "iam:CreateServiceLinkedRole": {"StringEquals": {"iam:AWSServiceName": list(SERVICE_LINKED)}},
}

# botocore's service names whose IAM prefix differs, and S3 operations authorized as another action
IAM_PREFIX = {"elbv2": "elasticloadbalancing", "resourcegroupstaggingapi": "tag", "logs": "logs"}
S3_ACTIONS = {"ListObjectsV2": "ListBucket", "ListObjects": "ListBucket", "HeadBucket": "ListBucket",
              "HeadObject": "GetObject", "ListObjectVersions": "ListBucketVersions", "DeleteObjects": "DeleteObject",
              "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
              "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
              "PutBucketEncryption": "PutEncryptionConfiguration", "GetBucketEncryption": "GetEncryptionConfiguration"}


def iam_action(service: str, operation: str) -> str:
    """The IAM action that authorizes botocore's `service` `operation` (e.g. elbv2 DescribeRules)."""
    if service == "s3":
        return f"s3:{S3_ACTIONS.get(operation, operation)}"
    return f"{IAM_PREFIX.get(service, service)}:{operation}"


def actions() -> list[str]:
    """Every action of the three tables, sorted, without duplicates."""
    rows: Iterable[tuple[str, ...]] = [*RESOURCES.values(), *INVOKES.values(), *CALLS.values()]
    every = {a for row in rows for a in row}
    wild = [a for a in every if "*" in a]
    # an action a wildcard row already grants (ec2:DescribeImages under ec2:Describe*) is listed once
    return sorted((a for a in every if "*" in a or not any(fnmatch.fnmatchcase(a, w) for w in wild)), key=str.lower)


def allows(policy: dict, action: str) -> bool:
    """Whether one of the policy's Allow statements names `action` (IAM matches case-insensitively)."""
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower())
               for st in policy["Statement"] if st["Effect"] == "Allow" for pattern in st["Action"])


def policy() -> dict:
    """The policy document: one statement per service, the conditioned IAM actions on their own."""
    by_service: dict[str, list[str]] = {}
    for action in actions():
        if action not in CONDITIONED:
            by_service.setdefault(action.split(":")[0], []).append(action)
    statements = [{"Sid": "".join(p.capitalize() for p in service.split("-")), "Effect": "Allow",
                   "Action": sorted(acts), "Resource": "*"} for service, acts in sorted(by_service.items())]
    for action, condition in CONDITIONED.items():
        statements.append({"Sid": action.split(":")[1], "Effect": "Allow", "Action": [action], "Resource": "*",
                           "Condition": condition})
    return {"Version": "2012-10-17", "Statement": statements}


def render() -> str:
    """The policy as `aws iam put-role-policy --policy-document` takes it."""
    return json.dumps(policy(), indent=2) + "\n"
