"""The seed-001 merge rules, by example and as properties over random trees."""

from hypothesis import given
from hypothesis import strategies as st

from fleet.spec.merge import merge_group, merge_value

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=3), inner, max_size=4)),
    max_leaves=12,
)
groups = st.dictionaries(st.sampled_from(list("abcdef")), values, max_size=6)


def test_examples():
    assert merge_value([1, 2], [3]) == [1, 2, 3]
    assert merge_value({"a": 1, "n": {"x": 1}}, {"b": 2, "n": {"y": 2}}) == {"a": 1, "b": 2, "n": {"y": 2}}
    assert merge_value(False, {"node_min": 1}) == {"node_min": 1}
    assert merge_value({"node_min": 1}, False) is False
    assert merge_value("m1.large", "m3.xlarge") == "m3.xlarge"
    assert merge_value([1], {"a": 1}) == {"a": 1}


@given(groups, groups)
def test_keys_are_the_union(parent, child):
    assert set(merge_group(parent, child)) == set(parent) | set(child)


@given(groups, groups)
def test_list_lengths_add_up_and_parent_items_come_first(parent, child):
    merged = merge_group(parent, child)
    for key, value in merged.items():
        if isinstance(parent.get(key), list) and isinstance(child.get(key), list):
            assert len(value) == len(parent[key]) + len(child[key])
            assert value[: len(parent[key])] == parent[key]
            assert value[len(parent[key]):] == child[key]


@given(groups, groups)
def test_dicts_merge_one_level_only(parent, child):
    merged = merge_group(parent, child)
    for key in set(parent) & set(child):
        p, c = parent[key], child[key]
        if isinstance(p, dict) and isinstance(c, dict):
            assert set(merged[key]) == set(p) | set(c)
            for k, v in merged[key].items():
                # child keys win; nested values (dicts included) are taken whole, never merged deeper
                assert v is (c[k] if k in c else p[k])


@given(groups, groups)
def test_scalars_and_type_changes_take_the_child(parent, child):
    merged = merge_group(parent, child)
    for key, c in child.items():
        p = parent.get(key)
        same_container = type(p) is type(c) and isinstance(c, (list, dict))
        if key in parent and not same_container:
            assert merged[key] is c
        if key not in parent:
            assert merged[key] is c


@given(groups)
def test_parent_only_keys_are_kept_unchanged(parent):
    merged = merge_group(parent, {})
    assert merged == parent
