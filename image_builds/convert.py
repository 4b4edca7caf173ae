"""Make any disk image raw for the EBS uploader: `qemu-img info --output json` tells the format; when
it is not raw, `qemu-img convert -O raw` writes a sparse raw copy (zero runs stay holes, so the
uploader skips them without reading)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

QEMU_IMG = "qemu-img"


class ConvertError(RuntimeError):
    """qemu-img is missing or failed; the message has its stderr."""


def _qemu_img() -> str:
    exe = shutil.which(QEMU_IMG)
    if exe is None:
        raise ConvertError("qemu-img not found on PATH (Debian: apt-get install qemu-utils)")
    return exe


def image_info(path: str | os.PathLike) -> dict:
    """`qemu-img info --output json` of the image, parsed."""
    proc = subprocess.run([_qemu_img(), "info", "--output", "json", os.fspath(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConvertError(f"qemu-img info {path} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def image_format(path: str | os.PathLike) -> str:
    """The image's format as qemu-img names it: raw, qcow2, vpc (VHD), vmdk, vhdx, ..."""
    return str(image_info(path)["format"])


def convert_to_raw(path: str | os.PathLike, dest: str | os.PathLike, *, source_format: str | None = None) -> Path:
    """`qemu-img convert -f <fmt> -O raw path dest` (the source format given explicitly, never
    probed twice); returns dest."""
    fmt = source_format or image_format(path)
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".part")
    proc = subprocess.run([_qemu_img(), "convert", "-f", fmt, "-O", "raw", os.fspath(path), os.fspath(tmp)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise ConvertError(f"qemu-img convert {path} ({fmt}) -> raw failed: {proc.stderr.strip()}")
    os.replace(tmp, dest)
    return dest


def ensure_raw(path: str | os.PathLike, workdir: str | os.PathLike | None = None) -> Path:
    """`path` itself when it is raw, else a raw copy `<workdir>/<name>.raw` (workdir defaults to the
    image's directory). The caller owns (and may delete) the copy."""
    path = Path(path)
    fmt = image_format(path)
    if fmt == "raw":
        return path
    out_dir = Path(workdir) if workdir is not None else path.parent
    dest = out_dir / (path.stem + ".raw")
    if dest.resolve() == path.resolve():
        dest = out_dir / (path.stem + ".converted.raw")
    return convert_to_raw(path, dest, source_format=fmt)
