"""The fixed monthly cost of a stack before any instance runs: what the first real deploy bills.

Counts the billable always-on resources in the offline plan of each stack (NAT gateways and their
public IPv4 addresses, load balancers, KMS keys, alarms, dashboards) and prices them at AWS's
us-east-1 list prices below (hourly items x 730 h). Instances, EBS volumes, data processed (NAT
gateway per GB, ALB LCUs), S3, Lambda and DynamoDB requests come on top and depend on traffic.
Prints one block per stack (README, "First deploy to a real account"). Run `python bench/bench_costs.py`.

PRICES: AWS's public pricing pages for us-east-1 (VPC pricing: NAT gateway and public IPv4 address;
Elastic Load Balancing pricing: Application Load Balancer hour; KMS pricing: customer managed key;
CloudWatch pricing: standard-resolution alarm metric, dashboard beyond the free three), as listed in
2024. Check the pages before budgeting: prices change and differ per region.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.plan.engine import run_program  # noqa: E402

HOURS = 730
PRICES = {  # resource type -> (USD, per, what)
    "aws:ec2/natGateway:NatGateway": (0.045, "hour", "NAT gateway (plus 0.045 per GB processed)"),
    "aws:ec2/eip:Eip": (0.005, "hour", "public IPv4 address (the NAT gateway's Elastic IP)"),
    "aws:lb/loadBalancer:LoadBalancer": (0.0225, "hour", "Application Load Balancer (plus 0.008 per LCU-hour)"),
    "aws:kms/key:Key": (1.00, "month", "KMS customer managed key (the alerts topic's)"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (0.10, "month", "CloudWatch alarm (standard resolution, 1 metric)"),
    "aws:cloudwatch/dashboard:Dashboard": (3.00, "month", "CloudWatch dashboard (the first 3 per account are free)"),
}


def monthly(stack: str) -> list[tuple[str, int, float]]:
    """[(what, count, USD per month)] for the billable fixed resources of `stack`'s offline plan."""
    run = run_program(stack)
    rows = []
    for typ, (price, per, what) in PRICES.items():
        count = len(run.of_type(typ))
        if count:
            rows.append((what, count, count * price * (HOURS if per == "hour" else 1)))
    return rows


def main() -> None:
    for stack in ("staging", "prod"):
        rows = monthly(stack)
        print(f"{stack}: fixed cost before instances, us-east-1 list prices, USD per month")
        for what, count, usd in rows:
            print(f"  {count:3d} x {what}: {usd:8.2f}")
        print(f"  total: {sum(u for _, _, u in rows):.2f}")


if __name__ == "__main__":
    main()
