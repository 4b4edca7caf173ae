"""fleet: one nodes.yaml -> this stack's AWS fleet (see components/program.py).

The offline plan of a folder that has no program of its own runs this file with `FLEET_PROJECT_DIR`
set to that folder: its nodes file, cookbooks and other files make the fleet, never this checkout's."""
from pathlib import Path

from components.program import build_program

_here = Path(__file__).resolve().parent
build_program(Path(globals().get("FLEET_PROJECT_DIR") or _here), program_dir=_here)
