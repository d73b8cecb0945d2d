"""Where a measured result comes from: machine, software versions and the command."""
from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (falls back to platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines(packages: tuple[str, ...] = ("jax", "jaxlib")) -> list[str]:
    """Markdown bullet lines: CPU and cores, Python and package versions, XLA flags, date."""
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in packages)
    return [f"- CPU: {cpu_model()}; cores: {os.cpu_count()} (usable by this process: "
            f"{len(os.sched_getaffinity(0))})",
            f"- Python {platform.python_version()}, {versions}",
            f"- XLA_FLAGS=`{os.environ.get('XLA_FLAGS', '')}`",
            f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}"]


def command_line() -> str:
    """The command that is running, as a shell line (run from the repository root)."""
    return shlex.join([".venv/bin/python", *sys.argv])


def kept_discussion(doc: Path) -> str:
    """The hand-written part of `doc` from "## Discussion" on (kept when the report is regenerated)."""
    if doc.exists() and "## Discussion" in doc.read_text():
        return "## Discussion" + doc.read_text().split("## Discussion", 1)[1].rstrip() + "\n"
    return "## Discussion\n\n(to be written)\n"
