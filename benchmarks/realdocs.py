"""What ragbook makes of real-world documents: each file read or skipped (and why), its warnings.

    python benchmarks/realdocs.py                       # -> benchmarks/results/realdocs.json
    python benchmarks/realdocs.py --compare benchmarks/results/realdocs-before.json

Every file under ``../shared/data/realdocs`` (good and hostile PDFs, Word files, notebooks, HTML)
goes through ``ragbook.load`` exactly as a build would read it.  Per file: read or skipped, the
reason, the warnings, characters, segments and the loading time; the types no loader reads.
With ``--compare`` the lines that changed since an earlier run are printed: files that went
from skipped to read (or back), and warnings that are new or gone.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import RESULTS, SHARED_DATA, machine  # noqa: E402  (sets the offline environment first)

REALDOCS = SHARED_DATA / "realdocs"


def survey(folder: Path) -> dict:
    from ragbook.loaders import discover, load_file
    from ragbook.errors import LoadError

    files, problems = discover(folder)
    out: dict[str, dict] = {}
    for p in problems:
        out[p.source] = {"status": getattr(p, "severity", "error"), "reason": p.reason}
    for f in files:
        t0 = time.perf_counter()
        try:
            docs = load_file(f.path, source=f.source)
        except LoadError as exc:
            out[f.source] = {"status": "skipped", "reason": str(exc), "seconds": round(time.perf_counter() - t0, 3)}
            continue
        out[f.source] = {
            "status": "read", "seconds": round(time.perf_counter() - t0, 3),
            "documents": len(docs), "chars": sum(len(d.text) for d in docs),
            "segments": sum(len(d.segments) for d in docs),
            "title": docs[0].title, "warnings": [w for d in docs for w in d.warnings],
        }
    return out


def compare(before: dict, after: dict) -> list[str]:
    lines = []
    for source in sorted(set(before) | set(after)):
        a, b = before.get(source, {"status": "absent"}), after.get(source, {"status": "absent"})
        if a["status"] != b["status"]:
            why = b.get("reason") or f"{b.get('chars', 0):,} chars, {b.get('segments', 0)} segments"
            lines.append(f"{source}: {a['status']} -> {b['status']} ({why})")
        elif a["status"] == "read" and a.get("chars") != b.get("chars"):
            lines.append(f"{source}: {a['chars']:,} -> {b['chars']:,} chars")
        for w in b.get("warnings", []):
            if w not in a.get("warnings", []):
                lines.append(f"{source}: new warning: {w}")
        for w in a.get("warnings", []):
            if w not in b.get("warnings", []):
                lines.append(f"{source}: warning gone: {w}")
        if a["status"] == b["status"] == "skipped" and a.get("reason") != b.get("reason"):
            lines.append(f"{source}: reason now: {b.get('reason')}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", default=str(REALDOCS))
    parser.add_argument("--out", default=str(RESULTS / "realdocs.json"))
    parser.add_argument("--compare", default=None, help="an earlier realdocs JSON to compare with")
    args = parser.parse_args()
    folder = Path(args.folder)
    if not folder.is_dir():
        raise SystemExit(f"no folder {folder}: the shared data is not here")
    t0 = time.perf_counter()
    files = survey(folder)
    seconds = time.perf_counter() - t0
    counts: dict[str, int] = {}
    for rec in files.values():
        counts[rec["status"]] = counts.get(rec["status"], 0) + 1
    for source, rec in sorted(files.items()):
        detail = rec.get("reason") or f"{rec['chars']:,} chars, {rec['segments']} segments, {rec['seconds']:.2f} s"
        print(f"{rec['status']:<8} {source}: {detail}")
        for w in rec.get("warnings", []):
            print(f"         warning: {w}")
    print(f"\n{counts} in {seconds:.1f} s")
    report = {"folder": str(folder), "seconds": round(seconds, 2), "counts": counts, "files": files, "machine": machine()}
    if args.compare:
        before = json.loads(Path(args.compare).read_text(encoding="utf-8"))
        report["changes"] = compare(before["files"], files)
        print("\nChanges since", args.compare)
        for line in report["changes"]:
            print(" ", line)
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
