"""Strip debug info from the shared libraries inside wheels, rewriting RECORD.

spaCy's and blis' manylinux wheels ship unstripped extension modules (spaCy's
alone is ~35 MB, ~9x its stripped size), which pushes .whl/ past what may travel to
the GPU machine. ``strip --strip-debug`` keeps every symbol the loader needs.
Usage: python slim_wheels.py .whl/*.whl
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def slim(wheel: Path) -> int:
    """Rewrite ``wheel`` in place; returns bytes saved (0 if nothing to strip)."""
    with zipfile.ZipFile(wheel) as src:
        names = src.namelist()
        if not any(n.endswith(".so") or ".so." in n for n in names):
            return 0
        before = wheel.stat().st_size
        with tempfile.TemporaryDirectory() as tmp:
            contents: dict[str, bytes] = {}
            for info in src.infolist():
                data = src.read(info)
                if info.filename.endswith(".so") or ".so." in info.filename:
                    path = Path(tmp) / "lib.so"
                    path.write_bytes(data)
                    subprocess.run(["strip", "--strip-debug", str(path)], check=True)
                    data = path.read_bytes()
                contents[info.filename] = data
            record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            for name, data in contents.items():
                if name == record_name:
                    continue
                writer.writerow([name, _digest(data), len(data)])
            writer.writerow([record_name, "", ""])
            contents[record_name] = out.getvalue().encode()
            tmp_wheel = Path(tmp) / wheel.name
            with zipfile.ZipFile(tmp_wheel, "w", compression=zipfile.ZIP_DEFLATED) as dst:
                for info in src.infolist():
                    new = zipfile.ZipInfo(info.filename, info.date_time)
                    new.external_attr = info.external_attr
                    new.compress_type = zipfile.ZIP_DEFLATED
                    dst.writestr(new, contents[info.filename])
            shutil.move(str(tmp_wheel), wheel)
    return before - wheel.stat().st_size


def main() -> None:
    for arg in sys.argv[1:]:
        saved = slim(Path(arg))
        if saved > 0:
            print(f"stripped {Path(arg).name}: -{saved / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
