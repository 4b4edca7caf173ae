"""A refusal by the YAML reader (a value JSON cannot hold, a repeated key) does not hide the nodes
file's other problems: one run reports them all, each once."""

from __future__ import annotations

from fleet.cli import main

NODES = """\
__base__: {instance_type: m5.large, source_ami: ami-12345678, image: {communicator: none}}
web:
  instances: .inf
  tags: {when: 2024-01-01}
api:
  autoscal: {node_min: 1}
cron:
  instance_type: m5.larg
  instance_type: m5.large
"""


def test_reader_refusals_and_the_files_other_problems_in_one_run(tmp_path, capsys):
    (tmp_path / "nodes.yaml").write_text(NODES)
    assert main(["--project", str(tmp_path), "validate"]) == 2
    lines = capsys.readouterr().err.splitlines()[1:]
    text = "\n".join(lines)
    assert ":3: group 'web': key 'instances': .inf is not a number JSON can hold" in text
    assert ":4: group 'web': key 'tags.when': YAML reads '2024-01-01' as a date" in text
    assert ":6: group 'api': key 'autoscal'" in text and "did you mean 'autoscale'" in text
    assert ":9: group 'cron': key 'instance_type': duplicate key" in text
    assert len(lines) == 4, text  # each problem once: not again as "instances must be an integer"
