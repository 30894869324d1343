"""Estimate a service image's Python payload from the packages installed in the workspace venv.

Usage: uv run python deployment/scripts/estimate_image_size.py mushroom-api

Sums the on-disk size of every file of every distribution in the package's locked, non-dev
dependency closure (`uv export --package <name> --no-dev --frozen`), as installed in the
running interpreter's environment. Add the base image and the app's own files to get the
image size (see deployment/README.md).
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

logger = logging.getLogger("estimate_image_size")

_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")


def locked_closure(package: str) -> list[str]:
    """Distribution names in `package`'s locked runtime closure for Linux/CPython."""
    exported = subprocess.run(
        ["uv", "export", "--package", package, "--no-dev", "--frozen", "--no-hashes"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = []
    for line in exported.splitlines():
        match = _REQUIREMENT.match(line)
        if match is None or "sys_platform == 'win32'" in line:
            continue
        names.append(match.group(1))
    return names


def installed_bytes(distribution: str) -> int:
    """Bytes on disk of every file the installed distribution recorded."""
    dist = metadata.distribution(distribution)
    total = 0
    for file in dist.files or []:
        path = Path(str(dist.locate_file(file)))
        if path.is_file():
            total += path.stat().st_size
    return total


def main(package: str) -> None:
    """Log the biggest distributions and the total for `package`."""
    sizes: dict[str, int] = {}
    for name in locked_closure(package):
        try:
            sizes[name] = installed_bytes(name)
        except metadata.PackageNotFoundError:
            logger.warning("%s is not installed here; left out of the sum", name)
    for name, size in sorted(sizes.items(), key=lambda item: -item[1])[:12]:
        logger.info("%8.1f MiB  %s", size / 2**20, name)
    logger.info(
        "%s: %d distributions, %.1f MiB installed", package, len(sizes), sum(sizes.values()) / 2**20
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main(sys.argv[1] if len(sys.argv) > 1 else "mushroom-api")
