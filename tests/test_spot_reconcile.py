"""The reconciler's pure decision (lambdas/spot_capacity/reconcile.py), and the proof that it and the
on-demand ASG's scaling policies do not fight: any interleaving of policy scale-outs, policy scale-ins
and reconciler runs, with Auto Scaling's own bounds (a policy never takes desired below MinSize or
above MaxSize: EC2 Auto Scaling user guide, "Set scaling limits"), keeps the two parts apart."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lambdas.spot_capacity.reconcile import OnDemand, SpotInstance, arriving, deficit_to_cover, plan, spot_deficit


def serving(*ids: str) -> list[SpotInstance]:
    return [SpotInstance(i, "InService", "Healthy") for i in ids]


class TestDeficit:
    def test_all_serving(self):
        assert spot_deficit(3, serving("a", "b", "c"), []) == 0

    def test_warned_instances_count_as_missing(self):
        assert spot_deficit(3, serving("a", "b", "c"), ["a", "b"]) == 2

    def test_failed_launches_count_as_missing(self):
        assert spot_deficit(5, serving("a", "b"), []) == 3

    def test_pending_and_unhealthy_and_leaving_do_not_serve(self):
        instances = [SpotInstance("a", "Pending", "Healthy"), SpotInstance("b", "InService", "Unhealthy"),
                     SpotInstance("c", "Terminating", "Healthy"), *serving("d")]
        assert spot_deficit(4, instances, []) == 3

    def test_warned_ids_of_gone_instances_do_not_count_twice(self):
        assert spot_deficit(2, serving("b", "c"), ["a"]) == 0

    def test_more_than_desired_is_no_deficit(self):
        assert spot_deficit(1, serving("a", "b"), []) == 0


class TestPlan:
    def test_warning_adds_one(self):
        p = plan(1, OnDemand(desired=1, max_size=3, base=1, extra=0))
        assert (p.cpu_part, p.extra, p.desired, p.min_size, p.capped) == (1, 1, 2, 2, False)

    def test_decay_back_to_base(self):
        p = plan(0, OnDemand(desired=2, max_size=3, base=1, extra=1))
        assert (p.desired, p.min_size, p.extra) == (1, 1, 0)

    def test_decay_keeps_the_cpu_driven_part(self):
        p = plan(0, OnDemand(desired=4, max_size=6, base=1, extra=1))
        assert (p.cpu_part, p.desired, p.min_size) == (3, 3, 1)

    def test_capped(self):
        p = plan(5, OnDemand(desired=2, max_size=3, base=1, extra=0))
        assert (p.extra, p.desired, p.capped, p.unmet) == (1, 3, True, 4)

    def test_cpu_part_at_max_leaves_no_room(self):
        p = plan(2, OnDemand(desired=3, max_size=3, base=1, extra=0))
        assert (p.extra, p.desired, p.capped) == (0, 3, True)

    def test_never_below_base_even_if_someone_lowered_desired(self):
        p = plan(0, OnDemand(desired=0, max_size=3, base=1, extra=1))
        assert (p.cpu_part, p.desired, p.min_size) == (1, 1, 1)

    def test_base_zero(self):
        p = plan(2, OnDemand(desired=0, max_size=4, base=0, extra=0))
        assert (p.desired, p.min_size) == (2, 2)


ops = st.lists(st.one_of(
    st.tuples(st.just("out"), st.integers(1, 4)),
    st.tuples(st.just("in"), st.integers(1, 4)),
    st.tuples(st.just("reconcile"), st.integers(0, 8)),
), max_size=40)


@given(base=st.integers(0, 3), room=st.integers(0, 6), steps=ops)
def test_the_reconciler_and_the_scaling_policies_do_not_fight(base, room, steps):
    """`cpu` is a ghost: the capacity the policies alone have asked for. Whatever happens, the ASG's
    desired is exactly cpu + the reconciler's extra, a policy scale-in never removes extra capacity,
    the reconciler never undoes a policy's change, and a run is a fixpoint (running it again changes
    nothing)."""
    max_size = base + room
    desired = min_size = cpu = base
    extra = deficit = 0
    for op, n in steps:
        if op == "out":  # target tracking / burst step: Auto Scaling stops at MaxSize
            added = min(max_size, desired + n) - desired
            desired, cpu = desired + added, cpu + added
        elif op == "in":  # the simple scale-in policy: Auto Scaling stops at MinSize
            removed = desired - max(min_size, desired - n)
            desired, cpu = desired - removed, cpu - removed
        else:
            deficit = n
            p = plan(deficit, OnDemand(desired=desired, max_size=max_size, base=base, extra=extra))
            desired, min_size, extra = p.desired, p.min_size, p.extra
            again = plan(deficit, OnDemand(desired=desired, max_size=max_size, base=base, extra=extra))
            assert (again.desired, again.min_size, again.extra) == (desired, min_size, extra), "not a fixpoint"
            assert extra == min(deficit, max_size - cpu)
        assert desired == cpu + extra, "the two parts are apart"
        assert base <= cpu and min_size == base + extra and desired <= max_size
    decayed = plan(0, OnDemand(desired=desired, max_size=max_size, base=base, extra=extra))
    assert (decayed.desired, decayed.min_size) == (cpu, base), "spot recovered: exactly the CPU-driven part is left"


class TestArriving:
    """A launching instance younger than its launch bound is arriving, not missing."""

    NOW, BOUND = 10_000.0, 390.0

    def launching(self, iid: str, age: float, state: str = "Pending:Wait") -> SpotInstance:
        return SpotInstance(iid, state, "Healthy", launched_at=self.NOW - age)

    def test_young_launching_instances_are_not_missing(self):
        instances = [*serving("a"), self.launching("b", 10), self.launching("c", 200, "Pending")]
        assert spot_deficit(3, instances, [], now=self.NOW, launch_bound=self.BOUND) == 0

    def test_past_the_bound_they_are_missing(self):
        instances = [*serving("a"), self.launching("b", 391), self.launching("c", 389, "Pending:Proceed")]
        assert spot_deficit(3, instances, [], now=self.NOW, launch_bound=self.BOUND) == 1

    def test_warned_unknown_age_and_unhealthy_in_service_are_missing(self):
        instances = [self.launching("w", 5), SpotInstance("u", "Pending", "Healthy"),
                     SpotInstance("x", "InService", "Unhealthy", launched_at=self.NOW - 5)]
        assert spot_deficit(3, instances, ["w"], now=self.NOW, launch_bound=self.BOUND) == 3

    def test_without_a_clock_the_old_answer(self):
        """Callers that pass no time (positional arguments as before) get what they always got."""
        instances = [*serving("a"), self.launching("b", 10)]
        assert spot_deficit(2, instances, []) == 1
        assert arriving(instances, []) == set()

    def test_arriving_instances_raise_nothing_and_take_nothing_away(self):
        """Scale-out: nothing added for instances on their way. A reclaimed instance's replacement on its
        way: the extra already there stays until it serves. Past the bound: missing."""
        young = [*serving("a"), self.launching("b", 10)]
        clock = {"now": self.NOW, "launch_bound": self.BOUND}
        assert deficit_to_cover(2, young, [], extra=0, **clock) == 0
        assert deficit_to_cover(2, young, [], extra=1, **clock) == 1
        assert deficit_to_cover(2, young, [], extra=3, **clock) == 1, "never more than is missing"
        assert deficit_to_cover(2, [*serving("a"), self.launching("b", 400)], [], extra=0, **clock) == 1
        assert deficit_to_cover(2, serving("a", "b"), [], extra=1, **clock) == 0
