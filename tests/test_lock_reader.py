"""nodes.lock.json is read like every other project file: bounded (size, depth), every value checked
(an `ami_id` reaches the launch template), every problem of the file reported at once, one line each,
exit 2; the per-entry `resolved_at` that `fleet lock` records is accepted."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.spec.errors import SpecError
from fleet.spec.lock import read_lock

KEY = "099720109477/ubuntu-*"
GOOD = {"ami_id": "ami-0123456789abcdef0", "name": "ubuntu-1", "creation_date": "2024-01-31T12:00:00.000Z",
        "root_device_name": "/dev/sda1", "resolved_at": "https://ec2.us-east-1.amazonaws.com"}


def write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        read_lock(path)
    return [str(p) for p in info.value.problems]


def test_a_good_lock_with_resolved_at_is_read(tmp_path):
    lock = read_lock(write(tmp_path / "nodes.lock.json", {"comment": "x", "images": {"us-east-1": {KEY: GOOD}}}))
    assert lock.images["us-east-1"][KEY].ami_id == GOOD["ami_id"]
    assert lock.images["us-east-1"][KEY].resolved_at == GOOD["resolved_at"]


@pytest.mark.parametrize("ami_id", ["not-an-ami", "", "ami-0123456789abcdef0\n", "ami-0123456789abcdef0; rm", 5, None])
def test_every_ami_id_is_checked(tmp_path, ami_id):
    found = problems(write(tmp_path / "nodes.lock.json", {"images": {"us-east-1": {KEY: {**GOOD, "ami_id": ami_id}}}}))
    assert len(found) == 1 and "ami_id" in found[0] and "is not an AMI id" in found[0]
    assert "\n" not in found[0]


def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path):
    found = problems(write(tmp_path / "nodes.lock.json", "[" * 1000 + "]" * 1000))
    assert found == [f"{tmp_path / 'nodes.lock.json'}: not a lock file: nested more than 8 levels deep: refused; "
                     "rewrite it with `fleet lock --update`"]


def test_a_huge_lock_is_refused_without_reading_it_whole(tmp_path):
    entry = {f"o/{i:08d}-*": GOOD for i in range(200_000)}
    path = write(tmp_path / "nodes.lock.json", {"images": {"us-east-1": entry}})
    assert path.stat().st_size > 30 * 1024 * 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    found = problems(path)
    assert time.perf_counter() - start < 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB: far below the file
    assert found == [f"{path}: not a lock file: larger than 1 MiB: refused; rewrite it with `fleet lock --update`"]


def test_every_problem_of_the_file_is_reported_at_once(tmp_path):
    data = {"images": {"us-east-1": {KEY: {**GOOD, "root_device_name": "sda1", "extra": "x"},
                                     "o/b-*": {**GOOD, "creation_date": "yesterday"},
                                     "nokey": GOOD},
                       "mars": {KEY: GOOD}, "eu-west-1": []},
            "surprise": 1}
    found = problems(write(tmp_path / "nodes.lock.json", data))
    text = "\n".join(found)
    for needle in ("root_device_name': 'sda1' is not a device name", "extra': is not a field",
                   "creation_date': 'yesterday' is not a date", "key 'images.us-east-1.nokey': is not a filter key",
                   "key 'images.mars': is not an AWS region", "key 'images.eu-west-1': must be a mapping",
                   "key 'surprise': not a key of the lock file"):
        assert needle in text, text
    assert len(found) == 7


@pytest.mark.parametrize("text,needle", [
    ('{"images": {"us-east-1": {"o/x": {"ami_id": Infinity}}}}', "Infinity is not a number"),
    ('{"images": 1e999}', "1e999 is not a finite number"),
    ("\xff", "not UTF-8"), ("[1, 2]", "a lock file is a JSON object, not list"),
])
def test_values_json_cannot_hold_are_one_line(tmp_path, text, needle):
    path = tmp_path / "nodes.lock.json"
    path.write_bytes(text.encode("latin-1"))
    (found,) = problems(path)
    assert needle in found


def test_validate_reports_a_bad_lock_in_one_line_and_exits_2(tmp_path, capsys):
    (tmp_path / "nodes.yaml").write_text(
        "g:\n  instance_type: m5.large\n  image: {communicator: none}\n"
        "  source_ami: {name: 'ubuntu-*', owners: ['099720109477']}\n")
    write(tmp_path / "nodes.lock.json", {"images": {"us-east-1": {KEY: {**GOOD, "ami_id": "ami-x\n"}}}})
    assert main(["--project", str(tmp_path), "validate"]) == 2
    err = capsys.readouterr().err.splitlines()[1:]
    assert len(err) == 1 and "ami_id': 'ami-x\\n' is not an AMI id" in err[0]
