"""botocore's data files (service models, endpoint rules) are read once per process.

`fleet.ops.aws.client()` makes a session per client (credentials and settings stay separate), and
a fresh botocore session parses its service's model again: EC2's is several MB of JSON, ~0.1 s a
client on a quiet machine. A command that makes a handful of clients, and the image build that
makes them again per step, paid that every time.
"""

from __future__ import annotations

import botocore.loaders

import fleet.ops.aws as aws_layer


def _count_loads(monkeypatch) -> list[str]:
    loads: list[str] = []
    real = botocore.loaders.JSONFileLoader.load_file

    def counting(self, file_path):
        loads.append(str(file_path))
        return real(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counting)
    return loads


def test_a_second_client_reads_no_data_file_again(monkeypatch):
    aws_layer.client("ec2", region="us-east-1", endpoint_url="http://127.0.0.1:9")  # the process's first
    loads = _count_loads(monkeypatch)
    made = [aws_layer.client(s, region="us-east-1", endpoint_url="http://127.0.0.1:9")
            for s in ("ec2", "ec2", "autoscaling")]
    assert [m.meta.service_model.service_name for m in made] == ["ec2", "ec2", "autoscaling"]
    assert not [p for p in loads if "/ec2/" in p or "endpoints" in p], loads


def test_the_shared_data_has_one_search_path_each(monkeypatch):
    for _ in range(3):
        aws_layer.client("ec2", region="us-east-1", endpoint_url="http://127.0.0.1:9")
    paths = aws_layer.new_session()._loader.search_paths
    assert len(paths) == len(set(paths)), paths
