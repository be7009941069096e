"""Shared helpers for the benchmark scripts: paths, timing, PASS/MISS lines, results JSON.

Every script compares ragbook with the raw library doing the same work in the same process,
so that whatever else the machine is doing (other people's jobs on a shared 2-core box)
affects both sides alike.  Figures are printed with their target and written to
``benchmarks/results/<name>.json`` together with the machine they were measured on.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

# Before anything imports ragbook or huggingface_hub: fail fast instead of retrying the hub,
# and keep progress bars out of benchmark logs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAGBOOK_PROGRESS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
RESULTS = BENCH / "results"
SHARED_DATA = REPO.parent / "shared" / "data"
OPENSTAX = SHARED_DATA / "corpora" / "openstax-intro-python" / "markdown"
DEMO_CORPUS = REPO / "corpora"

if str(REPO) not in sys.path:  # run from anywhere without installing
    sys.path.insert(0, str(REPO))


# -- machine ----------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def versions(*names: str) -> dict[str, str]:
    """Installed versions of the given distributions (without importing them)."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# -- timing -----------------------------------------------------------------------------------


def clock(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(seconds, result)`` of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of a non-empty sample."""
    data = sorted(samples)
    if not data:
        raise ValueError("no samples")
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summary_ms(samples: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean / min of a list of seconds, in milliseconds."""
    return {
        "p50_ms": round(percentile(samples, 50) * 1000, 4),
        "p95_ms": round(percentile(samples, 95) * 1000, 4),
        "mean_ms": round(statistics.fmean(samples) * 1000, 4),
        "min_ms": round(min(samples) * 1000, 4),
        "n": len(samples),
    }


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


# -- reporting --------------------------------------------------------------------------------


class Report:
    """Collects figures, prints each with its target and PASS/MISS, and writes the JSON file."""

    def __init__(self, name: str, argv: Sequence[str] | None = None, **settings: Any) -> None:
        self.name = name
        self.started = time.perf_counter()
        self.data: dict[str, Any] = {
            "benchmark": name,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python", f"benchmarks/{name}.py", *(argv if argv is not None else sys.argv[1:])]),
            "machine": machine(),
            "settings": settings,
            "checks": [],
            "figures": {},
        }

    def section(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def info(self, key: str, value: Any, text: str | None = None) -> None:
        """A figure without a target."""
        self.data["figures"][key] = value
        if text is not None:
            print(f"   {text}", flush=True)

    def check(self, key: str, value: float, target: str, ok: bool, text: str) -> bool:
        """A figure with a target: printed as ``PASS``/``MISS`` and recorded in ``checks``."""
        verdict = "PASS" if ok else "MISS"
        self.data["figures"][key] = value
        self.data["checks"].append({"figure": key, "value": value, "target": target, "verdict": verdict})
        print(f"{verdict:4}  {text}   [target {target}]", flush=True)
        return ok

    def write(self, suffix: str = "") -> Path:
        self.data["seconds"] = round(time.perf_counter() - self.started, 1)
        try:
            self.data["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        except OSError:
            pass
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}{suffix}.json"
        path.write_text(json.dumps(self.data, indent=2, default=_jsonable) + "\n", encoding="utf-8")
        misses = [c["figure"] for c in self.data["checks"] if c["verdict"] == "MISS"]
        print(f"\n{self.name}: {len(self.data['checks']) - len(misses)} PASS, {len(misses)} MISS"
              f"{' (' + ', '.join(misses) + ')' if misses else ''}; {self.data['seconds']:.0f} s; wrote {path.relative_to(REPO)}",
              flush=True)
        return path


def _jsonable(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:
        pass
    if isinstance(value, Path):
        return str(value)
    return str(value)


def corpus_folder() -> Path:
    """The OpenStax Markdown book when the shared data is present, else the demo corpus."""
    return OPENSTAX if OPENSTAX.is_dir() else DEMO_CORPUS
