"""Print ``name==version`` for the dependency closure of the given requirements, as
installed in the running environment, with markers evaluated for the GPU machine's
Python (3.12 on Linux). Used by download_wheels.sh; runs here, online or not."""
from __future__ import annotations

import argparse
import re
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: list[str], python_version: str, skip: set[str]) -> tuple[dict[str, str], list[str]]:
    env = default_environment()
    env.update({"python_version": python_version, "python_full_version": python_version + ".0",
                "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"})
    found: dict[str, str] = {}
    missing: list[str] = []
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        name = canonical(req.name)
        if name in found or name in skip:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            missing.append(str(req))
            continue
        found[name] = dist.version
        for dep in dist.requires or []:
            dep_req = Requirement(dep)
            if dep_req.marker is not None:
                extras = [{"extra": e} for e in req.extras] or [{"extra": ""}]
                if not any(dep_req.marker.evaluate({**env, **x}) for x in extras):
                    continue
            todo.append(dep_req)
    return found, missing


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("roots", nargs="+")
    parser.add_argument("--python-version", default="3.12")
    parser.add_argument("--skip", default="", help="comma-separated names not to list")
    args = parser.parse_args()
    skip = {canonical(s) for s in args.skip.split(",") if s}
    found, missing = closure(args.roots, args.python_version, skip)
    for name, version in sorted(found.items()):
        print(f"{name}=={version}")
    for req in missing:
        print(f"# not installed here, add by hand: {req}")


if __name__ == "__main__":
    main()
