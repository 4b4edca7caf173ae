"""fleet: one nodes.yaml -> this stack's AWS fleet (see components/program.py)."""
from pathlib import Path

from components.program import build_program

build_program(Path(__file__).resolve().parent)
