"""Which project a nodes file belongs to (its cookbooks and build code make the image hash), and
where its stack file is found: independent of the current directory."""

from __future__ import annotations

from pathlib import Path

from fleet.spec.load import load_fleet, project_dir_of

ROOT = Path(__file__).resolve().parent.parent


def test_project_dir_of(tmp_path, monkeypatch):
    assert project_dir_of(ROOT / "nodes.yaml") == ROOT
    assert project_dir_of(ROOT / "examples" / "local" / "nodes.yaml") == ROOT / "examples" / "local"
    (tmp_path / "Pulumi.yaml").write_text("name: x\n")
    (tmp_path / "fleets").mkdir()
    assert project_dir_of(tmp_path / "fleets" / "edge.yaml") == tmp_path
    monkeypatch.chdir(ROOT)
    assert project_dir_of(tmp_path / "fleets" / "edge.yaml") == tmp_path  # not the current directory


def test_a_nodes_file_in_a_subfolder_uses_the_projects_stack_file(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: x\n")
    (tmp_path / "Pulumi.s.yaml").write_text("config:\n  fleet:groups:\n    g: {instance_type: m5.xlarge}\n")
    (tmp_path / "fleets").mkdir()
    (tmp_path / "fleets" / "edge.yaml").write_text("g: {instance_type: m5.large, source_ami: ami-12345678}\n")
    assert load_fleet(tmp_path / "fleets" / "edge.yaml", "s").groups["g"].instance_type == "m5.xlarge"
