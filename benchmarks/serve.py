"""``ragbook serve`` under load: 30 simulated students asking at once, on 127.0.0.1 only.

The demo assistant (``corpora/``, saved as a ``.ragbook`` file under ``benchmarks/.cache/serve/``)
is served by ``ragbook.server.serve`` in a subprocess on a free 127.0.0.1 port, twice:

* with a fast stand-in model (``ragbook.testing.FakeLLM``, which answers with the cited first
  sentence of a passage in microseconds), 4 answers at a time, so the server's own overhead is
  what shows;
* with the real default model (llama.cpp, one answer at a time, as ``ragbook serve`` runs it).

Each simulated student loops: ``POST /api/ask`` with ``"stream": true`` (a question drawn from
15 the demo corpus answers and 2 it does not), reads the server-sent events (``queue``,
``stage``, ``token``, ``answer``/``error``), and asks again as soon as the answer is in (no
thinking time: the worst case).  Each student has its own class token (30 labels in the token
file, no rate limit), so the server's question log (``--log``) says, per request, how long it
waited in line (``waited_s``).  Per request: time to the first ``token`` event and to the
``answer`` event as the client sees them, the answer's own ``timings.total`` (retrieval,
generation and checking inside ``Assistant.stream``), and the queue positions shown.

Server overhead per request = client time to the answer - time waiting in line (the log's
``waited_s``) - the answer's ``timings.total``: HTTP in and out, the token check, the job hand-off
to a worker thread and back, turning the answer into JSON and the event stream, on loopback.
The raw library doing the same work in the same run: ``assistant.ask()`` in this process, the
same questions, alternated with single requests to the server (1 client, nothing in line).

Only clean 429s (with ``Retry-After``) are allowed; anything else (another status, an ``error``
event, a stream that ends without an answer, a dropped connection) is an error.  Requests still
open when the time is up get a short grace period, then are cut (counted apart, not errors).

Targets (``ragbook serve`` issue): stand-in model, 30 clients, overhead p50 < 10 ms; no errors;
resident memory of the server growth < 5% from start (after warm-up) to end; real model: no
errors, answers served in the order asked (one at a time), a queue position shown to waiting
students.

    python benchmarks/serve.py                 # stand-in 5 min, then the real model 5 min (~14 min)
    python benchmarks/serve.py --quick         # stand-in only, 30 s (~1 min)
    python benchmarks/serve.py --skip-real     # stand-in only, 5 min
    python benchmarks/serve.py --skip-standin  # real model only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import BENCH, DEMO_CORPUS, REPO, Report, percentile, summary_ms, versions  # noqa: E402

CACHE = BENCH / ".cache" / "serve"
PREFIX_STATES = 4  # ragbook.llm.prefix_cache.DEFAULT_MAX_STATES: llama.cpp states kept in memory
HOST = "127.0.0.1"
ADMIN = "bench-admin-token-0123456789"
OVERHEAD_TARGET_MS = 10.0
MEMORY_GROWTH_TARGET = 0.05
MAX_REQUESTS = 200_000  # hard cap over a run, whatever the duration
GRACE_S = {"standin": 10.0, "real": 30.0}  # after the time is up, open requests may finish for this long, then are cut
OFF_TOPIC = ["What is the capital of Australia?", "Who won the football World Cup in 2018?"]

LAUNCHER = """
import collections, logging, sys
logging.basicConfig(level=logging.WARNING)
from ragbook.server import load_for_serving, serve
from ragbook.server.access import Tokens
llm = None
if {standin!r}:
    from ragbook.testing import FakeLLM
    llm = FakeLLM()
    llm.calls = collections.deque(maxlen=1)  # FakeLLM keeps every prompt for tests: not the server's memory
assistant = load_for_serving({bundle!r}, llm=llm)
print("READY", assistant.llm_name, flush=True)
serve(assistant, host={host!r}, port={port}, log_level="warning", tokens=Tokens({tokens!r}), admin_token={admin!r},
      open_access=False, rate="0", parallel={parallel}, max_waiting={max_waiting}, log_path={log!r})
"""


def questions() -> list[str]:
    gold = json.loads((DEMO_CORPUS / ".questions.json").read_text(encoding="utf-8"))
    return [g["question"] for g in gold[:15]] + OFF_TOPIC


def bundle() -> Path:
    """The demo assistant as a ``.ragbook`` file, built once (again when a corpus file is newer)."""
    import ragbook

    path = CACHE / "data101.ragbook"
    newest = max(p.stat().st_mtime for p in DEMO_CORPUS.rglob("*") if p.is_file())
    if path.exists() and path.stat().st_mtime > newest:
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    index = ragbook.build(DEMO_CORPUS, out=CACHE / "index")
    ragbook.Assistant(index, name="DATA 101").save(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def student_tokens(n: int) -> dict[str, str]:
    return {f"s{i:02d}": f"bench-student-{i:02d}-token" for i in range(n)}


class Server:
    """The server subprocess: started, waited for, measured (RSS), stopped."""

    def __init__(self, kind: str, bundle_path: Path, clients: int, parallel: int, max_waiting: int) -> None:
        import psutil

        self.kind, self.port = kind, free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = CACHE / f"questions-{kind}.jsonl"
        self.log.unlink(missing_ok=True)
        self.stderr_path = CACHE / f"server-{kind}.log"
        code = LAUNCHER.format(standin=kind == "standin", bundle=str(bundle_path), host=HOST, port=self.port,
                               tokens=student_tokens(clients), admin=ADMIN, parallel=parallel, max_waiting=max_waiting,
                               log=str(self.log))
        env = dict(os.environ, PYTHONPATH=str(REPO) + (os.pathsep + os.environ["PYTHONPATH"]
                                                       if os.environ.get("PYTHONPATH") else ""))
        self.stderr = open(self.stderr_path, "w", encoding="utf-8")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        self.ps = psutil.Process(self.proc.pid)
        ready = self.proc.stdout.readline() if self.proc.stdout else ""
        if not ready.startswith("READY"):
            self.stop()
            raise RuntimeError(f"the server did not start: {self.stderr_path.read_text(encoding='utf-8')[-2000:]}")
        self.llm = ready.split(None, 1)[1].strip()
        self.loaded_s = time.perf_counter() - t0
        import httpx

        for _ in range(600):
            try:
                if httpx.get(self.url + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server stopped: {self.stderr_path.read_text(encoding='utf-8')[-2000:]}")
            time.sleep(0.1)
        self.up_s = time.perf_counter() - t0

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def records(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines() if line.strip()]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.stderr.close()
        return self.stderr_path.read_text(encoding="utf-8")


async def ask(client: Any, url: str, token: str, question: str, origin: float,
              rec: dict[str, Any] | None = None) -> dict[str, Any]:
    """One streamed question; the record of what the client saw (times in seconds), filled in ``rec`` as it comes."""
    import httpx

    rec = {} if rec is None else rec
    rec.update({"question": question, "sent": time.perf_counter() - origin, "status": None, "outcome": "error",
                "positions": []})
    t0 = time.perf_counter()
    try:
        async with client.stream("POST", url + "/api/ask", json={"question": question, "stream": True},
                                 headers={"Authorization": f"Bearer {token}"}) as resp:
            rec["status"] = resp.status_code
            if resp.status_code != 200:
                body = (await resp.aread()).decode("utf-8", "replace")
                rec["retry_after"] = resp.headers.get("retry-after")
                rec["outcome"] = "429" if resp.status_code == 429 and rec["retry_after"] else "error"
                rec["error"] = body[:300]
                return rec
            event = ""
            async for line in resp.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    now = time.perf_counter() - t0
                    if event == "token":
                        rec.setdefault("first_token", now)
                    elif event == "queue":
                        rec["positions"].append(json.loads(line[6:])["position"])
                        rec.setdefault("first_queue", now)
                    elif event == "stage":
                        rec.setdefault("first_stage", now)
                    elif event == "answer":
                        data = json.loads(line[6:])
                        rec.update(total=now, server_total=data["timings"]["total"], mode=data["mode"],
                                   cited=len(data.get("citations") or []), outcome="answered",
                                   server_first_token=data["timings"].get("first_token"))
                        rec["done"] = time.perf_counter() - origin
                    elif event == "error":
                        rec["error"] = line[6:][:300]
            if rec["outcome"] != "answered" and "error" not in rec:
                rec["error"] = "the stream ended without an answer"
    except asyncio.CancelledError:
        rec["outcome"] = "cut"
        raise
    except httpx.HTTPError as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        rec.setdefault("total_seen", time.perf_counter() - t0)
    return rec


async def load(url: str, clients: int, seconds: float, grace: float, qs: list[str], rss: Any, seed: int = 0) -> dict[str, Any]:
    """``clients`` students asking back to back for ``seconds``; then ``grace`` s for open requests, then cut."""
    import httpx

    tokens = list(student_tokens(clients).values())
    origin = time.perf_counter()
    end = origin + seconds
    done: list[dict[str, Any]] = []
    count = 0
    samples: list[tuple[float, int]] = []

    async def student(i: int) -> None:
        nonlocal count
        rng = random.Random(seed * 1000 + i)
        while time.perf_counter() < end and count < MAX_REQUESTS:
            count += 1
            rec: dict[str, Any] = {"student": i}
            try:
                await ask(client, url, tokens[i], rng.choice(qs), origin, rec)
            finally:
                done.append(rec)  # a request cut at the end too ("cut"), with the positions it was shown
            if rec["outcome"] == "429":
                await asyncio.sleep(min(float(rec["retry_after"]), max(0.0, end - time.perf_counter())))

    async def sampler() -> None:
        while True:
            samples.append((round(time.perf_counter() - origin, 1), rss()))
            await asyncio.sleep(5)

    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    timeout = httpx.Timeout(connect=10, read=60, write=10, pool=60)  # the server sends a comment every 10 s
    cpu0 = time.process_time()
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        sampling = asyncio.ensure_future(sampler())
        tasks = [asyncio.ensure_future(student(i)) for i in range(clients)]
        _, pending = await asyncio.wait(tasks, timeout=seconds + grace)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        sampling.cancel()
    wall = time.perf_counter() - origin
    return {"records": done, "wall_s": wall, "cut_open": len(pending), "rss_samples": samples,
            "client_cpu_share": round((time.process_time() - cpu0) / wall, 3)}


def attach_waits(records: list[dict[str, Any]], log: list[dict[str, Any]], tokens: dict[str, str]) -> int:
    """Give each answered request the server's ``waited_s`` from the question log: per student (token label), in
    the order asked, the first unused log line with the same question (a line may be written just after the next
    answer of the same student when several answers run at once).  Returns how many answered requests found none."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for line in log:
        if line["outcome"] in ("answered", "abstained"):
            by_label.setdefault(line["label"], []).append(line)
    missing = 0
    for i, label in enumerate(tokens):
        lines = by_label.get(label, [])
        mine = sorted((r for r in records if r.get("student") == i and r["outcome"] == "answered"), key=lambda r: r["sent"])
        for rec in mine:
            n = next((n for n, line in enumerate(lines) if line["question"] == rec["question"].strip()), None)
            if n is None:
                missing += 1
            else:
                rec["waited"] = lines.pop(n)["waited_s"]
    return missing


def figures(rep: Report, key: str, records: list[dict[str, Any]], wall: float, clients: int) -> dict[str, Any]:
    """Print and record what the clients saw; the summary dict."""
    answered = [r for r in records if r["outcome"] == "answered"]
    errors = [r for r in records if r["outcome"] == "error"]
    r429 = [r for r in records if r["outcome"] == "429"]
    cut = [r for r in records if r["outcome"] == "cut"]
    with_wait = [r for r in answered if "waited" in r]
    overhead = [r["total"] - r["waited"] - r["server_total"] for r in with_wait]
    out: dict[str, Any] = {
        "clients": clients, "wall_s": round(wall, 1), "requests": len(records), "answered": len(answered),
        "per_second": round(len(answered) / wall, 2), "errors": len(errors), "clean_429": len(r429), "cut_at_end": len(cut),
        "modes": {m: sum(r.get("mode") == m for r in answered) for m in sorted({r.get("mode") for r in answered})},
        "error_samples": [{k: r.get(k) for k in ("status", "error", "question")} for r in errors[:5]],
    }
    if answered:
        out["first_token"] = summary_ms([r["first_token"] for r in answered if "first_token" in r])
        out["full_answer"] = summary_ms([r["total"] for r in answered])
        out["server_total"] = summary_ms([r["server_total"] for r in answered])
    if with_wait:
        out["waited_in_line"] = summary_ms([r["waited"] for r in with_wait])
        out["overhead"] = summary_ms(overhead)
        staged = [r for r in with_wait if "first_stage" in r]
        queued = [r for r in with_wait if "first_queue" in r]
        if queued:  # the first queue event is sent by the event loop when the job gets in line
            out["send_to_queue_event"] = summary_ms([r["first_queue"] for r in queued])
        if staged:  # where: before the work starts (HTTP in, hand-off) or after it (the events out)
            out["overhead_in"] = summary_ms([r["first_stage"] - r["waited"] for r in staged])
            out["overhead_out"] = summary_ms([r["total"] - r["first_stage"] - r["server_total"] for r in staged])
    in_line = answered + cut  # every request that got in line (a cut one may have waited the whole run)
    positions = [p for r in in_line for p in r.get("positions", [])]
    out["queue"] = {"requests_in_line": len(in_line), "requests_shown_a_position": sum(bool(r.get("positions")) for r in in_line),
                    "max_position": max(positions, default=None),
                    "requests_that_waited_behind_others": sum(any(p > 0 for p in r.get("positions", [])) for r in in_line)}
    rep.info(key, out)
    print(f"   {clients} clients, {wall:.0f} s: {len(records)} requests, {len(answered)} answered "
          f"({out['per_second']}/s; {out['modes']}), {len(errors)} errors, {len(r429)} clean 429s, {len(cut)} cut at the end",
          flush=True)
    if answered:
        ft, fa, st = out["first_token"], out["full_answer"], out["server_total"]
        print(f"   first token p50 {ft['p50_ms']:.1f} / p95 {ft['p95_ms']:.1f} ms; full answer p50 {fa['p50_ms']:.1f} / "
              f"p95 {fa['p95_ms']:.1f} ms; the answer's own timings.total p50 {st['p50_ms']:.1f} ms", flush=True)
    if with_wait:
        w, o = out["waited_in_line"], out["overhead"]
        print(f"   waited in line p50 {w['p50_ms']:.1f} / p95 {w['p95_ms']:.1f} ms; server overhead (full answer - waited - "
              f"timings.total) p50 {o['p50_ms']:.2f} / p95 {o['p95_ms']:.2f} ms ({len(with_wait)} of {len(answered)} "
              "matched to the log)", flush=True)
        if "overhead_in" in out:
            print(f"     of which before the work (send -> first stage event, less the wait in line) p50 "
                  f"{out['overhead_in']['p50_ms']:.2f} ms, after it (first stage event -> answer event, less "
                  f"timings.total) p50 {out['overhead_out']['p50_ms']:.2f} ms; send -> first queue event p50 "
                  f"{out.get('send_to_queue_event', {}).get('p50_ms', float('nan')):.2f} ms", flush=True)
    q = out["queue"]
    print(f"   queue positions: {q['requests_shown_a_position']} of {len(in_line)} requests in line (answered or cut at "
          f"the end) shown one, "
          f"max {q['max_position']}, {q['requests_that_waited_behind_others']} waited behind others", flush=True)
    for e in out["error_samples"]:
        print(f"   error: {e}", flush=True)
    return out


def order_check(records: list[dict[str, Any]], gap: float = 0.25) -> dict[str, Any]:
    """With one answer at a time the line is FIFO.  Of two answered requests, the earlier must finish first:
    sent more than ``gap`` s apart, by the time sent; sent together (the first burst), by the first position
    each was shown.  Also: the positions a request was shown never go up."""
    answered = sorted((r for r in records if r["outcome"] == "answered"), key=lambda r: r["sent"])
    inversions, pairs = 0, 0
    for i, a in enumerate(answered):
        for b in answered[i + 1:]:
            if b["sent"] - a["sent"] > gap:
                first, second = a, b
            elif a["positions"] and b["positions"] and a["positions"][0] != b["positions"][0]:
                first, second = (a, b) if a["positions"][0] < b["positions"][0] else (b, a)
            else:
                continue
            pairs += 1
            inversions += second["done"] < first["done"]
    rising = sum(any(y > x for x, y in zip(r["positions"], r["positions"][1:])) for r in answered)
    return {"pairs": pairs, "inversions": inversions, "positions_rising": rising}


async def single(url: str, qs: list[str], rounds: int, assistant: Any | None) -> tuple[list[dict], list[float], list[float]]:
    """1 client: each question to the server, then (stand-in) the same through ``assistant.ask()`` here, alternated."""
    import httpx

    token = next(iter(student_tokens(1).values()))
    recs, raw_wall, raw_total = [], [], []
    async with httpx.AsyncClient(timeout=httpx.Timeout(connect=10, read=600, write=10, pool=10)) as client:
        origin = time.perf_counter()
        for r in range(rounds):
            for n, q in enumerate(qs):
                order = (0, 1) if (r + n) % 2 == 0 else (1, 0)
                for side in order:
                    if side == 0:
                        rec = await ask(client, url, token, q, origin)
                        rec["student"] = 0
                        recs.append(rec)
                    elif assistant is not None:
                        t0 = time.perf_counter()
                        answer = assistant.ask(q)
                        raw_wall.append(time.perf_counter() - t0)
                        raw_total.append(answer.timings["total"])
    return recs, raw_wall, raw_total


def run(rep: Report, kind: str, bundle_path: Path, args: argparse.Namespace, qs: list[str]) -> None:
    standin = kind == "standin"
    parallel = args.parallel if standin else 1
    seconds = args.duration if args.duration is not None else (30 if args.quick else 300)
    rep.section(f"{'stand-in model (FakeLLM)' if standin else 'the real default model'}: parallel={parallel}, "
                f"max_waiting=64, {args.clients} students for {seconds:.0f} s")
    server = Server(kind, bundle_path, args.clients, parallel, 64)
    out: dict[str, Any] = {"llm": server.llm, "parallel": parallel, "server_up_s": round(server.up_s, 1)}
    print(f"   server pid {server.proc.pid} on {server.url}, model {server.llm}, up in {server.up_s:.1f} s", flush=True)
    try:
        # warm-up, and the 1-client comparison with the raw library (stand-in) in the same run
        raw = None
        if standin:
            from ragbook.server import load_for_serving
            from ragbook.testing import FakeLLM

            raw = load_for_serving(bundle_path, llm=FakeLLM())
            raw.ask(qs[0])
        rounds = (1 if args.quick else 3) if standin else 1
        # the real model: 5 answers, enough to fill llama.cpp's prefix cache (PREFIX_STATES below), whose
        # states (10-30 MB each for the 1.5B model) would otherwise count as growth though they are bounded
        warm = qs if standin else qs[:PREFIX_STATES + 1]
        recs, raw_wall, raw_total = asyncio.run(single(server.url, warm, rounds, raw))
        time.sleep(0.5)  # the log line is written just after the answer is sent
        missing = attach_waits(recs, server.records(), student_tokens(1))
        if standin:
            one = figures(rep, f"{kind}_1_client", recs, sum(r.get("total_seen", 0) for r in recs), 1)
            client_p50 = percentile([r["total"] for r in recs if r["outcome"] == "answered"], 50)
            raw_p50 = percentile(raw_wall, 50)
            out["raw_ask"] = {"wall": summary_ms(raw_wall), "timings_total": summary_ms(raw_total)}
            out["one_client_over_raw"] = round(client_p50 / raw_p50, 3)
            print(f"   1 client: full answer over HTTP p50 {client_p50 * 1000:.1f} ms vs assistant.ask() here "
                  f"{raw_p50 * 1000:.1f} ms ({client_p50 / raw_p50:.2f}x, +{(client_p50 - raw_p50) * 1000:.1f} ms); "
                  f"overhead p50 {one.get('overhead', {}).get('p50_ms', float('nan')):.2f} ms", flush=True)
            del raw
        else:
            out["warm_up"] = [{k: r.get(k) for k in ("question", "outcome", "first_token", "total", "server_total")}
                              for r in recs]
            print(f"   warm-up: {len(recs)} questions, {[round(r.get('total', 0), 1) for r in recs]} s", flush=True)
        if missing:
            print(f"   note: {missing} warm-up answers without a matching log line", flush=True)
        served_before = len(server.records())
        rss_start = server.rss()
        cpu_start = server.ps.cpu_times()
        result = asyncio.run(load(server.url, args.clients, seconds, GRACE_S[kind], qs, server.rss))
        time.sleep(1.0)
        rss_end = server.rss()  # (the sleep above also lets the last log lines be written)
        cpu_end = server.ps.cpu_times()
        out["server_cpu_share"] = round((cpu_end.user + cpu_end.system - cpu_start.user - cpu_start.system)
                                        / result["wall_s"], 3)
        out["client_cpu_share"] = result["client_cpu_share"]
        print(f"   CPU: server {out['server_cpu_share']:.2f} cores, the simulated students {out['client_cpu_share']:.2f} "
              f"cores (of {os.cpu_count()})", flush=True)
        log = server.records()[served_before:]
        missing = attach_waits(result["records"], log, student_tokens(args.clients))
        loaded = figures(rep, f"{kind}_{args.clients}_clients", result["records"], result["wall_s"], args.clients)
        if missing:
            print(f"   note: {missing} answered requests without a matching log line", flush=True)
        out["log_unmatched"] = missing
        out["log_outcomes"] = {o: sum(r["outcome"] == o for r in log) for o in sorted({r["outcome"] for r in log})}
        import httpx

        stats = httpx.get(server.url + "/api/stats", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).json()
        health = httpx.get(server.url + "/api/health", timeout=10).json()
        out["server_stats"] = {k: stats.get(k) for k in ("questions", "outcomes", "answer_s", "first_token_s")}
        out["health_after"] = health
        out["rss_samples_mb"] = [(t, round(b / 2**20, 1)) for t, b in result["rss_samples"]]
        print(f"   server after: health {health}; its stats: {out['server_stats']['outcomes']}", flush=True)
    finally:
        stderr = server.stop()
    out["server_stderr_tail"] = stderr[-1500:]
    bad = [line for line in stderr.splitlines() if "Traceback" in line or "ERROR" in line or "Exception" in line]
    out["server_stderr_problems"] = len(bad)
    if bad:
        print(f"   server stderr: {len(bad)} problem lines, e.g. {bad[:3]} (see {server.stderr_path.relative_to(REPO)})",
              flush=True)
    rep.info(f"{kind}_run", out)

    growth = rss_end / rss_start - 1
    rep.check(f"{kind}_errors", loaded["errors"], "0 (only clean 429s)", loaded["errors"] == 0,
              f"errors: {loaded['errors']} of {loaded['requests']} requests ({loaded['clean_429']} clean 429s, "
              f"{loaded['cut_at_end']} cut at the end)")
    rep.check(f"{kind}_rss_growth", round(growth, 4), f"< {MEMORY_GROWTH_TARGET:.0%}", growth < MEMORY_GROWTH_TARGET,
              f"server resident memory {rss_start / 2**20:.1f} MB at start -> {rss_end / 2**20:.1f} MB at the end "
              f"({growth:+.1%}; peak sampled {max(b for _, b in result['rss_samples']) / 2**20:.1f} MB)")
    if standin:
        o = loaded.get("overhead", {}).get("p50_ms", float("inf"))
        rep.check(f"{kind}_overhead_p50_ms", o, f"< {OVERHEAD_TARGET_MS:g} ms at {args.clients} clients",
                  o < OVERHEAD_TARGET_MS, f"server overhead per request, p50 at {args.clients} clients: {o:.2f} ms")
    else:
        order = order_check(result["records"])
        rep.info("real_order", order)
        ok = order["pairs"] > 0 and order["inversions"] == 0 and not order["positions_rising"]
        rep.check("real_order_inversions", order["inversions"], "0 (in more than 0 pairs)", ok,
                  f"answers in the order asked: {order['inversions']} inversions in {order['pairs']} pairs (by time sent, "
                  f"or by first position shown when sent together); {order['positions_rising']} requests saw their "
                  "position go up")
        q = loaded["queue"]
        shown = q["requests_shown_a_position"] == q["requests_in_line"] and q["requests_that_waited_behind_others"] > 0
        rep.check("real_queue_positions_shown", q["requests_shown_a_position"], "every request in line", shown,
                  f"queue position shown to {q['requests_shown_a_position']} of {q['requests_in_line']} requests in line "
                  f"(max {q['max_position']}; {q['requests_that_waited_behind_others']} waited behind others)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=None, help="seconds of load per run (default 300; 30 with --quick)")
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="stand-in model only, 30 s")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-standin", action="store_true")
    parser.add_argument("--parallel", type=int, default=1,
                        help="answers at a time with the stand-in model (default 1: what ragbook serve picks for an "
                             "in-process model; the real model always runs with 1)")
    args = parser.parse_args(argv)
    rep = Report("serve", argv if argv is not None else sys.argv[1:], clients=args.clients, quick=args.quick,
                 duration_s=args.duration or (30 if args.quick else 300), host=HOST, parallel_standin=args.parallel,
                 versions=versions("ragbook", "starlette", "uvicorn", "httpx", "llama-cpp-python"))
    qs = questions()
    t0 = time.perf_counter()
    path = bundle()
    print(f"demo assistant: {path.relative_to(REPO)} ({time.perf_counter() - t0:.1f} s); {len(qs)} questions, "
          f"{len(OFF_TOPIC)} of them not in the documents", flush=True)
    if not args.skip_standin:
        run(rep, "standin", path, args, qs)
    if not (args.quick or args.skip_real):
        run(rep, "real", path, args, qs)
    suffix = "-quick" if args.quick else "" if not (args.skip_real or args.skip_standin) else (
        "-standin" if args.skip_real else "-real")
    if args.parallel != 1 and not args.skip_standin:
        suffix += f"-p{args.parallel}"
    rep.write(suffix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
