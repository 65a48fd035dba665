"""Run every benchmark: `python -m benchmarks` (or `make bench`)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    failures = 0
    for module in sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_")):
        print(f"== benchmarks.{module}", flush=True)
        failures += subprocess.run([sys.executable, "-m", f"benchmarks.{module}"]).returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
