"""fleet: one nodes.yaml -> baked images, spot/on-demand ASG pairs behind an ALB.

Only fleet/plan/ may import pulumi; everything else in this package is pure logic or boto3 (fleet/ops/).
"""
