"""The `fleet simulate` subcommand (fleet/cli.py registers it): arguments, trace, output."""

from __future__ import annotations

import json
import sys

from fleet.spec.errors import Problem, SpecError

DEFAULT_DAYS = 1


def add_simulate_command(sub, add) -> None:
    from fleet.simulate import SYNTHETIC

    sp = add("simulate", None, "replay load against the group's deployed scaling policies, alarms and spot "
             "reconciler in a model of AWS: cost per day, minutes short of capacity, p95 CPU", group=True)
    sp.set_defaults(func=cmd_simulate)
    sp.add_argument("--trace", default="synthetic:diurnal", metavar="FILE.csv|synthetic:NAME",
                    help=f"per-minute load: a CSV (README: format) or synthetic:{{{','.join(SYNTHETIC)}}}")
    sp.add_argument("--from-cloudwatch", action="store_true", help="the group's own recorded load of the last "
                    "--days days, read from CloudWatch (needs --stack; AWS credentials or --endpoint-url)")
    sp.add_argument("--endpoint-url", default=None, help="AWS endpoint for --from-cloudwatch (a local moto server)")
    sp.add_argument("--region", default=None, help="AWS region for --from-cloudwatch (default: the stack's)")
    sp.add_argument("--days", type=int, default=None,
                    help=f"days to simulate (default {DEFAULT_DAYS}; a CSV: its length)")
    sp.add_argument("--peak", type=float, default=None, help="synthetic traces: peak load in instances at 100 %% "
                    "CPU (default: 80 %% of node_max at the spot target CPU)")
    sp.add_argument("--requests-per-instance", type=float, default=None,
                    help="a CSV with a requests column: requests per minute one instance serves at 100 %% CPU")
    sp.add_argument("--seed", type=int, default=0, help="seed of interruptions, shortages and trace noise")
    sp.add_argument("--compare", action="append", default=[], metavar="KEY=VALUE",
                    help="also run with one setting changed (repeatable), e.g. scaling.burst.cpu=90, market=on-demand")
    sp.add_argument("--prices", default=None, help="price snapshot JSON (default: the bundled, dated one)")
    sp.add_argument("--interruptions", default=None, help="interruption snapshot JSON (default: the bundled one)")
    sp.add_argument("--plot", default=None, metavar="OUT.png", help="write load vs capacity and CPU as a PNG")
    sp.add_argument("--json", action="store_true", help="print the results as JSON")


def cmd_simulate(args) -> int:
    from fleet.cli import EXIT_FAILED, EXIT_OK, _load, project_of
    from fleet.simulate import report, traces
    from fleet.simulate.market import Market
    from fleet.simulate.run import lanes_for, simulate

    fleet = _load(args)
    group = fleet.group(args.group)
    if group.autoscale is None:
        raise SpecError([Problem(fleet.nodes_file, None, group.name, "autoscale",
                                 "autoscale: false: a fixed group has nothing to simulate")])
    if args.days is not None and args.days < 1:
        raise SpecError([Problem("--days", None, group.name, None, "--days must be at least 1")])
    market = Market.load(args.prices, args.interruptions)
    lanes = lanes_for(group, args.compare, market)
    recorded = None
    if args.from_cloudwatch:
        if fleet.stack is None:
            raise SpecError([Problem(fleet.nodes_file, None, group.name, None, "--from-cloudwatch needs --stack")])
        from botocore.exceptions import BotoCoreError, ClientError

        from fleet.ops.cloudwatch import NoRecordedLoad, recorded_load

        try:
            recorded = recorded_load(fleet.stack.name, group.name, days=args.days or DEFAULT_DAYS,
                                     region=args.region or fleet.stack.region, endpoint_url=args.endpoint_url)
        except (NoRecordedLoad, ClientError, BotoCoreError) as exc:
            print(f"fleet simulate {group.name}: {' '.join(str(exc).split())}", file=sys.stderr)
            return EXIT_FAILED
        demand, source = recorded.load, f"CloudWatch, last {args.days or DEFAULT_DAYS} days"
    elif args.trace.startswith("synthetic:"):
        a = group.autoscale
        peak = args.peak if args.peak is not None else 0.8 * a.node_max * group.scaling.target_cpu / 100
        demand = traces.synthetic(args.trace.split(":", 1)[1], args.days or DEFAULT_DAYS, peak, args.seed)
        source = f"{args.trace}, peak {peak:g}"
    else:
        demand = traces.read_csv(args.trace, args.requests_per_instance)
        if args.days is not None:
            demand = demand[:args.days * 1440]
        source = args.trace
    result = simulate(lanes, demand, args.seed)
    if args.plot:
        from fleet.simulate.plot import plot

        plot(lanes, result.series, args.plot, title=f"fleet simulate {group.name} ({source}, seed {args.seed})")
    project_of(args)
    if args.json:
        doc = {"group": group.name, "trace": source, "seed": args.seed, "minutes": int(len(demand)),
               "snapshots": market.dated(), "lanes": result.summary}
        if recorded is not None:
            doc["recorded_scaling_activities"] = recorded.activities
        print(json.dumps(doc, indent=2))
    else:
        print(f"fleet simulate {group.name}: {source}, {len(demand)} minutes, seed {args.seed}; prices as of "
              f"{market.prices.get('as_of')}, interruptions as of {market.interruptions.get('as_of')}")
        print(report.table(result.summary))
        if recorded is not None:
            print(f"recorded scaling activities in CloudWatch's window: {recorded.activities}")
        if args.plot:
            print(f"wrote {args.plot}", file=sys.stderr)
    return EXIT_OK


