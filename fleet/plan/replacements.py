"""Which input changes make the provider replace a resource, and what a replacement risks (pure data).

One entry per resource type the program registers: the inputs (Pulumi camelCase names, top level or
a dotted nested path) whose change the provider answers with delete + create instead of an update,
what that costs this fleet, and where the list comes from. pulumi-aws is a bridge of
terraform-provider-aws: its replacements are the Terraform schema's `ForceNew` (and the
`CustomizeDiff` functions that call `ForceNew`), so the sources below are files of
hashicorp/terraform-provider-aws; pulumi-command's come from its Go types
(`provider:"replaceOnChanges"`). Inputs a type does not list update in place.

Read for this table in the provider's source (the schema in the file named): aws_lb_target_group
(all of its entry), aws_autoscaling_group (initial_lifecycle_hook), aws_launch_template (name,
name_prefix), aws_instance (ami through launch_template, and the CustomizeDiff that forces a new
instance on a new launch_template version), aws_lb_listener_rule (listener_arn; priority is
`ForceNew: false`), aws_lb (customer_owned_ipv4_pool), aws_subnet (availability_zone, cidr_block),
aws_eip (domain), pulumi-command local.Command (only `triggers`; a changed `create` runs as an
update). The other entries are the arguments the provider's documentation marks "(Forces new
resource)", not re-read here: check the file named before relying on one.

Pulumi adds replacements of its own, handled by fleet.plan.diff and not listed here: a resource
option `replaceOnChanges`, a changed parent or type without an alias (a new URN).
"""

from __future__ import annotations

from dataclasses import dataclass

TF = "hashicorp/terraform-provider-aws internal/service/"

# The pulumi-aws release this table was checked against (requirements.lock pins it; a test keeps the two
# equal and checks every field below is an input of that release's resource). Bumping pulumi-aws means
# re-reading the entries: the provider's schema marks replacing inputs `willReplaceOnChanges`.
PULUMI_AWS_VERSION = "7.51.1"


@dataclass(frozen=True)
class ReplaceRule:
    label: str  # what the resource is, for people ("target group")
    fields: frozenset[str]  # camelCase inputs (or dotted paths) whose change forces a new resource
    risk: str  # what a replacement does to the running fleet
    source: str  # where `fields` comes from


def _rule(label: str, fields: str, risk: str, source: str) -> ReplaceRule:
    return ReplaceRule(label, frozenset(fields.split()), risk, source)


# Every aws: resource takes a `region` argument (pulumi-aws 7 / provider 6): a resource lives in one
# region, so moving it is a new resource.
REGION = "region"

REPLACE_ON_CHANGES: dict[str, ReplaceRule] = {
    "aws:lb/targetGroup:TargetGroup": _rule(
        "target group", "name namePrefix port protocol protocolVersion targetType vpcId ipAddressType",
        "traffic moves to an empty group unless the new one is created and healthy before the listener rule "
        "and the ASGs switch to it; instances still serve the old port meanwhile",
        TF + "elbv2/target_group.go (ForceNew)"),
    "aws:autoscaling/group:Group": _rule(
        "ASG", "name namePrefix initialLifecycleHooks",
        "a new ASG launches new instances and the old one terminates all of its own, without the rollout's "
        "health gate; capacity dips if the new ones are slow to become healthy",
        TF + "autoscaling/group.go (ForceNew)"),
    "aws:ec2/launchTemplate:LaunchTemplate": _rule(
        "launch template", "name namePrefix",
        "a new template id: every ASG and instance using it moves to the new template (a rollout, and a "
        "replacement for one-off instances); the old template's versions, the rollback targets, are deleted",
        TF + "ec2/ec2_launch_template.go (ForceNew)"),
    "aws:ec2/instance:Instance": _rule(
        "instance",
        "ami associatePublicIpAddress availabilityZone ebsBlockDevices ebsOptimized ephemeralBlockDevices "
        "hibernation hostId instanceMarketOptions ipv6Addresses keyName launchTemplate.id launchTemplate.name "
        "subnetId privateIp placementGroup tenancy securityGroups cpuOptions rootBlockDevice.encrypted "
        "rootBlockDevice.kmsKeyId",
        "the instance is terminated and a new one launched: what is on its disks and its private IP are lost, "
        "and nothing is serving in between",
        TF + "ec2/ec2_instance.go (ForceNew)"),
    "aws:lb/loadBalancer:LoadBalancer": _rule(
        "load balancer", "name namePrefix internal loadBalancerType customerOwnedIpv4Pool",
        "a new DNS name: DNS records and clients pointing at the old one fail once it is deleted; "
        "listeners and rules are recreated with it",
        TF + "elbv2/load_balancer.go (ForceNew)"),
    "aws:lb/listener:Listener": _rule(
        "listener", "loadBalancerArn",
        "the port stops accepting connections between the delete and the create",
        TF + "elbv2/listener.go (ForceNew)"),
    "aws:lb/listenerRule:ListenerRule": _rule(
        "listener rule", "listenerArn",
        "requests for its hosts/paths fall to the listener's default action until the new rule exists",
        TF + "elbv2/listener_rule.go (ForceNew; priority updates in place)"),
    "aws:ec2/securityGroup:SecurityGroup": _rule(
        "security group", "name namePrefix description vpcId",
        "a new group id: instances, templates and rules are re-pointed one by one (members briefly lack the "
        "rules), and the old group's delete waits while network interfaces still use it",
        TF + "ec2/vpc_security_group.go (ForceNew)"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _rule(
        "ingress rule", "securityGroupId",
        "the rule is deleted and created: connections it allows are refused in between",
        TF + "vpc/security_group_ingress_rule.go (RequiresReplace)"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": _rule(
        "egress rule", "securityGroupId",
        "the rule is deleted and created: connections it allows are refused in between",
        TF + "vpc/security_group_egress_rule.go (RequiresReplace)"),
    "aws:autoscaling/lifecycleHook:LifecycleHook": _rule(
        "lifecycle hook", "name",
        "instances terminating in between are not drained",
        TF + "autoscaling/lifecycle_hook.go (ForceNew; autoscaling_group_name updates in place)"),
    "aws:autoscaling/policy:Policy": _rule(
        "scaling policy", "name autoscalingGroupName",
        "the ASG does not scale on this policy in between; its alarms are re-pointed",
        TF + "autoscaling/policy.go (ForceNew)"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": _rule(
        "alarm", "name",
        "the alarm's history is lost and it starts in INSUFFICIENT_DATA; a rollout gated on it is not "
        "protected until it has data",
        TF + "cloudwatch/metric_alarm.go (ForceNew)"),
    "aws:cloudwatch/dashboard:Dashboard": _rule(
        "dashboard", "dashboardName", "links to the old dashboard break", TF + "cloudwatch/dashboard.go (ForceNew)"),
    "aws:iam/role:Role": _rule(
        "IAM role", "name namePrefix path",
        "a new role: instance profiles and functions are re-pointed; calls made with the old role fail once "
        "it is deleted",
        TF + "iam/role.go (ForceNew)"),
    "aws:iam/instanceProfile:InstanceProfile": _rule(
        "instance profile", "name namePrefix path",
        "launch templates are re-pointed (a new template version, so a rollout); launches in between can fail",
        TF + "iam/instance_profile.go (ForceNew)"),
    "aws:iam/rolePolicy:RolePolicy": _rule(
        "role policy", "name namePrefix role", "the role lacks these permissions in between",
        TF + "iam/role_policy.go (ForceNew)"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _rule(
        "policy attachment", "role policyArn", "the role lacks these permissions in between",
        TF + "iam/role_policy_attachment.go (ForceNew)"),
    "aws:lambda/function:Function": _rule(
        "Lambda function", "name packageType",
        "a new function: its permissions and event targets are re-pointed; events in between are retried or "
        "dead-lettered",
        TF + "lambda/function.go (ForceNew)"),
    "aws:lambda/permission:Permission": _rule(
        "Lambda permission", "action function principal principalOrgId sourceArn sourceAccount statementId "
        "statementIdPrefix qualifier eventSourceToken",
        "invocations by that principal are refused in between", TF + "lambda/permission.go (ForceNew)"),
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": _rule(
        "invoke config", "functionName qualifier", "failed async events are not sent to the dead-letter queue in "
        "between", TF + "lambda/function_event_invoke_config.go (ForceNew)"),
    "aws:cloudwatch/eventRule:EventRule": _rule(
        "EventBridge rule", "name namePrefix eventBusName", "events in between are not delivered",
        TF + "events/rule.go (ForceNew)"),
    "aws:cloudwatch/eventTarget:EventTarget": _rule(
        "EventBridge target", "rule targetId eventBusName", "events in between are not delivered",
        TF + "events/target.go (ForceNew)"),
    "aws:cloudwatch/logGroup:LogGroup": _rule(
        "log group", "name namePrefix logGroupClass", "the old group's logs are deleted with it",
        TF + "logs/group.go (ForceNew)"),
    "aws:sqs/queue:Queue": _rule(
        "SQS queue", "name namePrefix fifoQueue", "messages in the old queue are lost",
        TF + "sqs/queue.go (ForceNew)"),
    "aws:sqs/queuePolicy:QueuePolicy": _rule(
        "queue policy", "queueUrl", "senders are refused in between", TF + "sqs/queue_policy.go (ForceNew)"),
    "aws:dynamodb/table:Table": _rule(
        "DynamoDB table", "name hashKey rangeKey localSecondaryIndexes restoreSourceName restoreToLatestTime "
        "restoreDateTime",
        "the spot capacity reconciler's table: a new, empty one; runs in between fail and are retried, and the "
        "record of the extra on-demand capacity is rebuilt from the on-demand ASG's MinSize - base",
        TF + "dynamodb/table.go (ForceNew)"),
    "aws:sns/topic:Topic": _rule(
        "SNS topic", "name namePrefix fifoTopic",
        "a new topic ARN: subscriptions (e-mail confirmations too) must be made again; alarms are re-pointed",
        TF + "sns/topic.go (ForceNew)"),
    "aws:kms/key:Key": _rule(
        "KMS key", "customerMasterKeySpec keyUsage multiRegion customKeyStoreId xksKeyId",
        "the alerts topic is re-encrypted with a new key; the old key is scheduled for deletion (30 days)",
        TF + "kms/key.go (ForceNew)"),
    "aws:kms/keyPolicy:KeyPolicy": _rule(
        "KMS key policy", "keyId", "CloudWatch and EventBridge cannot publish to the alerts topic in between",
        TF + "kms/key_policy.go (ForceNew)"),
    "aws:s3/bucket:Bucket": _rule(
        "S3 bucket", "bucket bucketPrefix objectLockEnabled",
        "a new, empty bucket; the old one's delete fails while it holds objects",
        TF + "s3/bucket.go (ForceNew)"),
    "aws:s3/bucketV2:BucketV2": _rule(
        "S3 bucket", "bucket bucketPrefix objectLockEnabled",
        "a new, empty bucket; the old one's delete fails while it holds objects",
        TF + "s3/bucket.go (ForceNew)"),
    **{f"aws:s3/{m}:{c}": _rule(
        label, "bucket" + (" expectedBucketOwner" if owner else ""), f"the bucket has no {label} in between",
        TF + f"s3/{f}.go (ForceNew)")
       for m, c, label, f, owner in (
           ("bucketVersioning", "BucketVersioning", "versioning", "bucket_versioning", True),
           ("bucketVersioningV2", "BucketVersioningV2", "versioning", "bucket_versioning", True),
           ("bucketServerSideEncryptionConfiguration", "BucketServerSideEncryptionConfiguration",
            "default encryption", "bucket_server_side_encryption_configuration", True),
           ("bucketServerSideEncryptionConfigurationV2", "BucketServerSideEncryptionConfigurationV2",
            "default encryption", "bucket_server_side_encryption_configuration", True),
           # these three take no expectedBucketOwner input in pulumi-aws 7
           ("bucketPublicAccessBlock", "BucketPublicAccessBlock", "public access block", "bucket_public_access_block",
            False),
           ("bucketOwnershipControls", "BucketOwnershipControls", "ownership controls", "bucket_ownership_controls",
            False),
           ("bucketPolicy", "BucketPolicy", "bucket policy", "bucket_policy", False),
           ("bucketLifecycleConfiguration", "BucketLifecycleConfiguration", "lifecycle rules",
            "bucket_lifecycle_configuration", True),
           ("bucketLifecycleConfigurationV2", "BucketLifecycleConfigurationV2", "lifecycle rules",
            "bucket_lifecycle_configuration", True))},
    "aws:s3/bucketObjectv2:BucketObjectv2": _rule(
        "S3 object", "bucket key", "the object is missing in between", TF + "s3/object.go (ForceNew)"),
    "aws:ec2/vpc:Vpc": _rule(
        "VPC", "cidrBlock", "everything in the VPC is replaced with it: the whole fleet",
        TF + "ec2/vpc_.go (ForceNew)"),
    "aws:ec2/subnet:Subnet": _rule(
        "subnet", "vpcId cidrBlock availabilityZone availabilityZoneId",
        "instances in the subnet are replaced; the delete waits for them", TF + "ec2/vpc_subnet.go (ForceNew)"),
    "aws:ec2/natGateway:NatGateway": _rule(
        "NAT gateway", "subnetId allocationId connectivityType privateIp",
        "private instances lose outbound access in between", TF + "ec2/vpc_nat_gateway.go (ForceNew)"),
    "aws:ec2/eip:Eip": _rule(
        "Elastic IP", "domain address", "a new public address", TF + "ec2/ec2_eip.go (ForceNew)"),
    "aws:ec2/routeTable:RouteTable": _rule(
        "route table", "vpcId", "subnets lose their routes in between", TF + "ec2/vpc_route_table.go (ForceNew)"),
    "aws:ec2/route:Route": _rule(
        "route", "routeTableId destinationCidrBlock destinationIpv6CidrBlock",
        "the route is missing in between", TF + "ec2/vpc_route.go (ForceNew)"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _rule(
        "route table association", "subnetId gatewayId", "the subnet uses the main route table in between",
        TF + "ec2/vpc_route_table_association.go (ForceNew)"),
    "aws:ec2/internetGateway:InternetGateway": _rule(
        "internet gateway", "", "public subnets lose their way out in between",
        TF + "ec2/vpc_internet_gateway.go (no ForceNew argument: vpc_id attaches in place)"),
    "aws:sns/topicSubscription:TopicSubscription": _rule(
        "SNS subscription", "topic protocol endpoint",
        "the subscription must be confirmed again (e-mail); notifications in between are not delivered",
        TF + "sns/topic_subscription.go (ForceNew)"),
    "aws:sns/topicPolicy:TopicPolicy": _rule(
        "topic policy", "arn", "publishers are refused in between", TF + "sns/topic_policy.go (ForceNew)"),
    "aws:iam/policy:Policy": _rule(
        "IAM policy", "name namePrefix path description", "roles lose these permissions in between",
        TF + "iam/policy.go (ForceNew)"),
    "command:local:Command": _rule(
        "command", "triggers",
        "the command runs again (its create): for an image, a bake or the reuse of the AMI with that hash",
        "pulumi/pulumi-command provider/pkg/provider/local/command.go (Triggers: provider:\"replaceOnChanges\")"),
}

# The provider's CustomizeDiff forces a new network load balancer when subnets are removed or when
# security groups are added to or removed from one (elbv2/load_balancer.go).
NLB_FIELDS = frozenset({"subnets", "securityGroups"})

# aws_instance's CustomizeDiff calls ForceNew("launch_template.0.version") when the version it resolves
# changes (ec2/ec2_instance.go): a one-off instance on `latest_version` is replaced by every new
# launch template version.
INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"

# Launch template inputs whose change does NOT create a new version (the provider's update creates one
# for every other change: ec2/ec2_launch_template.go, resourceLaunchTemplateUpdate's HasChangesExcept).
LT_NO_VERSION = frozenset({"defaultVersion", "description", "tags", "tagsAll", "updateDefaultVersion"})


def rule_for(typ: str) -> ReplaceRule | None:
    return REPLACE_ON_CHANGES.get(typ)


def forcing_fields(typ: str, old: dict, new: dict) -> frozenset[str]:
    """The fields whose change replaces a resource of `typ` with these inputs (region for every aws: type)."""
    rule = REPLACE_ON_CHANGES.get(typ)
    fields = set(rule.fields) if rule else set()
    if typ.startswith("aws:"):
        fields.add(REGION)
    if typ == "aws:lb/loadBalancer:LoadBalancer" and "network" in (new.get("loadBalancerType"),
                                                                  old.get("loadBalancerType")):
        fields |= NLB_FIELDS
    if typ == INSTANCE and new.get("userDataReplaceOnChange"):
        fields |= {"userData", "userDataBase64"}
    return frozenset(fields)


def matches(path: str, field: str) -> bool:
    """`path` (as fleet.plan.diff lists them: `a.b[2].c`) is `field` or lies under it."""
    field = field.replace("[*]", "")
    return path == field or path.startswith(field + ".") or path.startswith(field + "[")
