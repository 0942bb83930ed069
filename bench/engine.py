"""Replay throughput and memory of the livecoupon engine, and durable-rules beside it.

Run from the repository root::

    .venv/bin/python bench/engine.py                 # both streams, 1,000,000 events each (~15 minutes)
    .venv/bin/python bench/engine.py --stream mixed --events 100000 --repeat 1 --skip-memory  # quick run
    .venv/bin/python bench/engine.py --events 200000 --profile --skip-durable --skip-cli --skip-memory

Two streams, each through every engine below: the mixed one (``StreamSpec.mixed``: ~1,400
viewers who comment, like, gift and buy, transcripts every 1-3 s, decisions over 5% of
events), whose whole-process ratio against durable-rules is the figure that counts, and
the heartbeat-heavy one (``StreamSpec.for_events``: 10,000 viewers, nine events in ten a
present viewer's heartbeat or like). ``--stream varied``: the mixed one with no two comments or
transcripts alike (each a few random characters longer), as in a real room: no cache of texts helps;
``--stream facts``: the mixed one with every viewer event naming its viewer's device, ip and profile.

What it measures (all figures printed as one table at the end):

1. livecoupon, in process: ``livecoupon.engine.replay.replay(campaign, lines)`` over the
   generated JSON-lines file: parse + validate + order + engine + decisions, the code path
   of ``livecoupon replay``. Every trigger kind of ``bench/campaign.yaml`` is enabled.
2. livecoupon, CLI whole process: ``livecoupon replay EVENTS --config C --out DIR``
   wall time, including interpreter start-up, imports and writing the outputs; its peak
   RSS (the child's VmHWM, polled). When the installed livecoupon is compiled (mypyc),
   the pure-Python build runs beside it (the same command with ``LIVECOUPON_PURE=1``), and
   with ``--before CHECKOUT`` another checkout's sources too (``PYTHONPATH=CHECKOUT/src``).
3. durable-rules 2.0.28 (if installed: ``.venv/bin/pip install durable-rules==2.0.28``)
   on the same file, running the equivalent first-visit, comment-keyword and dwell
   rules (see ``DurableRun``). Its decision counts are checked against livecoupon's.
4. Memory with 100,000 present viewers in one room (joins, then heartbeats), in child
   processes: tracemalloc peak/current of engine + in-memory store, peak RSS over the
   baseline (VmHWM) of the same run without tracemalloc, and the tracemalloc peak of the
   whole ``replay()`` path (which holds the file's lines, and streams them into the engine).

The stream is bench/streams.py's seeded broadcast (same seed, same bytes).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import heapq
import io
import itertools
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from bench.streams import (  # noqa: E402
    dumps,
    presence_events,
    presence_users,
    stream_stats,
    write_mixed_stream,
    write_stream,
)

from livecoupon.campaign_file import load_campaign, parse_campaign  # noqa: E402
from livecoupon.compiled import MODULES, PURE_ENV, is_compiled, outdated  # noqa: E402
from livecoupon.domain.campaign import Campaign  # noqa: E402
from livecoupon.engine.replay import replay  # noqa: E402

CAMPAIGN = ROOT / "bench" / "campaign.yaml"
DURABLE_VERSION = "2.0.28"
# durable-rules' C engine holds at most this many sessions (sids) per ruleset at a time
DURABLE_MAX_SESSIONS = 1024


# -- machine ------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, check=False).stdout.strip()
    except OSError:
        commit, dirty = "?", ""
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "loadavg": os.getloadavg(),
            "commit": commit + (" (src/ has uncommitted changes)" if dirty else "")}


def maxrss_kib(who: int = resource.RUSAGE_SELF) -> int:
    return resource.getrusage(who).ru_maxrss  # KiB on Linux


def proc_status_kib(field: str, pid: int | str = "self") -> int:
    """VmRSS (current) or VmHWM (peak) resident set size of a process, KiB (0 if gone).

    Unlike ru_maxrss, VmHWM starts afresh at exec, so a child's figure is its own and
    not the forked parent's."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def rss_kib() -> int:
    return proc_status_kib("VmRSS")


# -- livecoupon ---------------------------------------------------------------------------
@dataclass
class LivecouponRun:
    lines: int
    applied: int
    seconds: float
    decisions: collections.Counter[tuple[str, str]]
    rejected: int

    @property
    def issued(self) -> int:
        return sum(n for (_, outcome), n in self.decisions.items() if outcome == "issued")

    def by_trigger(self, trigger: str) -> int:
        return sum(n for (t, _), n in self.decisions.items() if t == trigger)


EQUIVALENT_TRIGGERS = ("newcomer", "dwell", "kou1")  # what the durable-rules side runs


def three_rule_campaign() -> Campaign:
    """bench/campaign.yaml with only the triggers durable-rules also runs (limits and
    the dwell experiment kept: deciding is part of livecoupon's work)."""
    data = yaml.safe_load(CAMPAIGN.read_text(encoding="utf-8"))
    data["triggers"] = [t for t in data["triggers"] if t["name"] in EQUIVALENT_TRIGGERS]
    return parse_campaign(yaml.safe_dump(data, allow_unicode=True))


def run_livecoupon(path: Path, lines: int, profile: cProfile.Profile | None = None,
                   campaign: Campaign | None = None) -> LivecouponRun:
    campaign = campaign if campaign is not None else load_campaign(CAMPAIGN)
    gc.collect()
    with path.open("r", encoding="utf-8") as f:
        started = time.perf_counter()
        if profile is not None:
            profile.enable()
        result = replay(campaign, f)
        if profile is not None:
            profile.disable()
        seconds = time.perf_counter() - started
    decisions = collections.Counter(
        (d.request.trigger, "issued" if d.issued else d.reason.value)  # type: ignore[union-attr]
        for d in result.decisions)
    return LivecouponRun(lines, result.events, seconds, decisions, len(result.rejected))


R = TypeVar("R")
_DURABLE_RUNS = itertools.count()


def fastest(repeat: int, run: Callable[[], R]) -> R:
    """The fastest of ``repeat`` runs (each result has ``seconds``): noise only ever adds time."""
    runs = [run() for _ in range(max(1, repeat))]
    return min(runs, key=lambda r: r.seconds)  # type: ignore[attr-defined, no-any-return]


def fastest_alternating(repeat: int, runs: dict[str, Callable[[], R]]) -> dict[str, R]:
    """The fastest of ``repeat`` runs of each, the runs alternated (the order reversed every other
    round) so that a noisy spell of the shared machine falls on all of them alike."""
    results: dict[str, list[R]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(max(1, repeat)):
        for name in names if round_ % 2 == 0 else reversed(names):
            results[name].append(runs[name]())
    return {name: min(found, key=lambda r: r.seconds)  # type: ignore[attr-defined]
            for name, found in results.items()}


@dataclass
class CliRun:
    seconds: float
    exit: int
    stderr: str
    counts: dict[str, int | None]
    peak_rss_kib: int | None  # VmHWM polled every 20 ms
    cpu_seconds: float = 0.0  # user + system time of the process: steadier than the wall time on a loaded machine
    loadavg: float = 0.0  # the one-minute load average as it ended
    same_as_first: bool | None = None  # outputs equal to the first build's, byte for byte


def run_cli(path: Path, out_dir: Path, env: dict[str, str] | None = None) -> CliRun:
    """``livecoupon replay`` as a user runs it, whole process: wall time from spawn to exit."""
    exe = Path(sys.executable).with_name("livecoupon")
    cmd = [str(exe), "replay", str(path), "--config", str(CAMPAIGN), "--out", str(out_dir)]
    environ = {**os.environ, **(env or {})}
    started = time.perf_counter()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    hwm = 0
    with tempfile.TemporaryFile("w+") as err_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err_file, text=True, env=environ)
        while proc.poll() is None:  # VmHWM only grows: the last reading is (nearly) the peak
            hwm = max(hwm, proc_status_kib("VmHWM", proc.pid))
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child was reaped by poll()
        cpu = (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
        err_file.seek(0)
        stderr = " ".join(err_file.read().split())[-400:]
    counts: dict[str, int | None] = {}
    for name in ("issued", "suppressed", "rejected"):
        p = out_dir / f"{name}.jsonl"
        counts[name] = sum(1 for _ in p.open(encoding="utf-8")) if p.exists() else None
    return CliRun(seconds, proc.returncode, stderr, counts, hwm or None, cpu, os.getloadavg()[0])


# -- durable-rules ------------------------------------------------------------------------
VIEWING = ("join", "heartbeat", "comment", "like", "follow", "gift")


@dataclass
class DurableRun:
    """The equivalent rules on durable-rules, one session (sid) per present viewer.

    Rules (per ruleset shard), all matched by durable-rules' C engine:
      kou1  (pri 0): comment whose text matches ``.*扣 ?[1１].*`` — the raw text, since
                     durable-rules has no NFKC/punctuation normalisation; the regex covers
                     the spellings the stream uses (扣1, 扣 1, 扣１). Also counts as seen.
      seen  (pri 1): join | heartbeat | comment | like | follow | gift. Presence in session
                     state (joined_at, last_seen); a (re)join decides first_visit and
                     schedules the dwell timer.
      leave (pri 1): leave; the session is finished: ``c.delete_state()``.
      order (pri 1): order; remembered in session state (dwell needs "no order in window").
      dwell (pri 1): a dwell timer came due; decides if present since that join, no order.
    "Once per" memory that must outlive sessions (visited users, decided-this-broadcast)
    is in Python sets, because a session must be deleted when the viewer goes.

    The driver does what livecoupon's replay loop does around its engine: reads and
    decodes each line, drops repeated ids, keeps events in ts order, fires timers due
    before each event (durable-rules' own timers run on the wall clock, useless for a
    replay), and ends sessions: explicit leave, presence time-out (60 s without a viewing
    event) and live_end, calling ``delete_state``. Because one ruleset holds at most 1,024
    sessions, viewers are spread over as many identical ruleset shards as needed.
    """

    events: int = 0          # lines read
    posted: int = 0
    seconds: float = 0.0
    actions: collections.Counter[str] = field(default_factory=collections.Counter)
    decisions: collections.Counter[str] = field(default_factory=collections.Counter)
    deleted: int = 0
    shards: int = 0
    peak_sessions: int = 0
    error: str | None = None


def is_money(value: Any) -> bool:
    """Yuan with at most two decimals, as livecoupon checks a gift's value."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 \
        and abs(value * 100 - round(value * 100)) < 1e-6


def _no_dispatch() -> None:
    return None


def run_durable(path: Path, limit: int | None, timeout_s: float = 60.0, dwell_after_s: float = 300.0) -> DurableRun:
    from durable.lang import get_host, m, pri, ruleset, when_all  # type: ignore[import-untyped]

    out = DurableRun()
    run_number = next(_DURABLE_RUNS)
    timeout, after = round(timeout_s * 1000), round(dwell_after_s * 1000)
    visited: set[str] = set()
    kou1_done: set[str] = set()
    dwell_done: set[str] = set()
    timers: list[tuple[int, int, str, int]] = []  # (due, seq, sid, joined_at)
    seq = [0]
    actions, decisions = out.actions, out.decisions

    def seen(c: Any) -> None:
        s, ts = c.s, c.m.ts
        joined = s.j
        if joined is None or ts - s.l > timeout:
            s.j = ts
            s.l = ts
            user = s.sid
            if user not in visited:
                visited.add(user)
                decisions["newcomer"] += 1
            if user not in dwell_done:
                seq[0] += 1
                heapq.heappush(timers, (ts + after, seq[0], user, ts))
        elif ts > s.l:
            s.l = ts

    shard_names: list[str] = []

    def define_shard() -> str:
        name = f"livecoupon_bench_{run_number}_{len(shard_names)}"  # rulesets are process-global
        with ruleset(name):
            @when_all(pri(0), (m.t == "comment") & m.text.matches(".*扣 ?[1１].*"))  # type: ignore[untyped-decorator]
            def kou1(c: Any) -> None:
                actions["kou1"] += 1
                seen(c)
                user = c.s.sid
                if user not in kou1_done:
                    kou1_done.add(user)
                    decisions["kou1"] += 1

            @when_all(pri(1), (m.t == "join") | (m.t == "heartbeat") | (m.t == "comment") | (m.t == "like")
                      | (m.t == "follow") | (m.t == "gift"))  # type: ignore[untyped-decorator]
            def viewing(c: Any) -> None:
                actions["seen"] += 1
                seen(c)

            @when_all(pri(1), m.t == "leave")  # type: ignore[untyped-decorator]
            def leave(c: Any) -> None:
                actions["leave"] += 1
                c.delete_state()

            @when_all(pri(1), m.t == "order")  # type: ignore[untyped-decorator]
            def order(c: Any) -> None:
                actions["order"] += 1
                if c.s.o is None or c.m.ts > c.s.o:
                    c.s.o = c.m.ts

            @when_all(pri(1), m.t == "dwell")  # type: ignore[untyped-decorator]
            def dwell(c: Any) -> None:
                actions["dwell"] += 1
                s, due, joined = c.s, c.m.ts, c.m.j
                if s.j != joined or s.l is None or due - s.l > timeout:
                    return
                user = s.sid
                o = s.o
                if user in dwell_done or (o is not None and joined <= o < due):
                    return
                dwell_done.add(user)
                decisions["dwell"] += 1
        shard_names.append(name)
        return name

    def quiet(host: Any) -> None:
        # Workaround: the Host's background threads call Ruleset.dispatch() (C
        # start_action) and dispatch_timers() (C assert_timers) every 0.2 s; after
        # delete_state the first segfaults in 2.0.28 and the second logs "Could not
        # assert timers, error code: 204". post() already runs every action
        # synchronously, and no rule here is asynchronous or uses durable-rules' own
        # (wall-clock) timers, so both have nothing to do: disable them.
        for rs in host._ruleset_list:
            rs.dispatch = _no_dispatch
            rs.dispatch_timers = _no_dispatch

    define_shard()
    host = get_host()
    quiet(host)
    post, delete_state = host.post, host.delete_state
    live: collections.OrderedDict[str, int] = collections.OrderedDict()  # sid -> last viewing ts, by recency
    shard_of: dict[str, int] = {}
    shard_load: list[int] = [0]
    seen_ids: set[str] = set()
    peak = 0
    loads = json.loads

    def end_session(sid: str, delete: bool = True) -> None:
        shard = shard_of.pop(sid)
        shard_load[shard] -= 1
        if delete:
            delete_state(shard_names[shard], sid)
        out.deleted += 1

    def sweep(now: int) -> None:
        horizon = now - timeout
        while live:
            sid, last = next(iter(live.items()))
            if last >= horizon:
                return
            del live[sid]
            end_session(sid)

    started = time.perf_counter()
    try:
        with path.open("r", encoding="utf-8") as f:
            for line in f:
                if limit is not None and out.events >= limit:
                    break
                out.events += 1
                try:
                    e = loads(line)
                    kind, ts = e["type"], round(e["ts"] * 1000)
                except (ValueError, KeyError, TypeError):
                    continue
                eid = e.get("id")
                if eid is not None:
                    if eid in seen_ids:
                        continue
                    seen_ids.add(eid)
                # timers due at or before this event fire first, in due order
                while timers and timers[0][0] <= ts:
                    due, _, sid, joined = heapq.heappop(timers)
                    sweep(due)
                    if sid in live:
                        post(shard_names[shard_of[sid]], {"sid": sid, "t": "dwell", "ts": due, "j": joined})
                        out.posted += 1
                sweep(ts)
                if kind == "gift" and not is_money(e.get("value")):
                    continue  # livecoupon rejects the line (a malformed copy in the stream); so does the driver
                if kind in VIEWING:
                    sid = e.get("user")
                    if not sid:
                        continue
                    if sid not in live:
                        shard = min(range(len(shard_load)), key=shard_load.__getitem__)
                        if shard_load[shard] >= DURABLE_MAX_SESSIONS - 1:
                            define_shard()
                            quiet(get_host())
                            shard_load.append(0)
                            shard = len(shard_load) - 1
                        shard_of[sid] = shard
                        shard_load[shard] += 1
                        peak = max(peak, len(shard_of))
                    else:
                        live.move_to_end(sid)
                    live[sid] = ts
                    msg = {"sid": sid, "t": kind, "ts": ts}
                    if kind == "comment":
                        text = e.get("text")
                        if not isinstance(text, str):
                            continue
                        msg["text"] = text
                    post(shard_names[shard_of[sid]], msg)
                    out.posted += 1
                elif kind in ("leave", "order"):
                    sid = e.get("user")
                    if sid in live:  # a leave/order of a viewer with no session changes nothing
                        post(shard_names[shard_of[sid]], {"sid": sid, "t": kind, "ts": ts})
                        out.posted += 1
                        if kind == "leave":
                            del live[sid]
                            end_session(sid, delete=False)  # the rule's action deleted it
                elif kind in ("live_end", "live_start"):
                    for sid in list(live):
                        del live[sid]
                        end_session(sid)
                    if kind == "live_start":
                        kou1_done.clear()
                        dwell_done.clear()
                        timers.clear()
    except Exception as exc:  # noqa: BLE001 - report, do not hide, what durable-rules did
        out.error = f"{type(exc).__name__}: {exc}"
    out.seconds = time.perf_counter() - started
    out.shards = len(shard_names)
    out.peak_sessions = peak
    return out


# -- memory with many present viewers (child processes) -------------------------------------
def memory_child(mode: str, viewers: int) -> dict[str, Any]:
    from livecoupon.domain.events import parse_event
    from livecoupon.engine.engine import Engine
    from livecoupon.store.memory import MemoryStore

    campaign = load_campaign(CAMPAIGN)
    result: dict[str, Any] = {"mode": mode, "viewers": viewers}
    if mode == "replay":
        # the whole replay() path: JSON lines in memory first (not counted in the peak)
        lines = [dumps(e) for e in presence_events(viewers)]
        gc.collect()
        import tracemalloc
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        r = replay(campaign, lines)
        result["seconds"] = time.perf_counter() - started
        current, peak = tracemalloc.get_traced_memory()
        result.update(events=r.events, decisions=len(r.decisions), tracemalloc_peak=peak - base,
                      tracemalloc_current=current - base)
        return result
    trace = mode == "tracemalloc"
    users = presence_users(viewers)  # allocated before measuring: the driver's, not the engine's
    gc.collect()
    cur0 = rss_kib()
    result["baseline_rss_kib"] = cur0  # interpreter + livecoupon imports (pypinyin's tables)
    result["baseline_hwm_kib"] = proc_status_kib("VmHWM")
    if trace:
        import tracemalloc
        tracemalloc.start()
    engine = Engine(campaign, MemoryStore())
    started = time.perf_counter()
    n = decisions = 0
    last_ts = 0
    for data in presence_events(viewers, users=users):  # generated on the fly: events are not retained
        event = parse_event(data)
        decisions += len(engine.apply(event))
        last_ts = event.ts
        n += 1
    result["seconds"] = time.perf_counter() - started
    room = next(iter(engine.rooms.values()))
    result.update(events=n, decisions=decisions, present=len(room.present_users(last_ts)),
                  timers=len(engine._timers))
    if trace:
        import tracemalloc
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        result.update(tracemalloc_peak=peak, tracemalloc_current=current)
        snapshot = tracemalloc.take_snapshot()
        top = snapshot.statistics("lineno")[:6]
        result["top_allocations"] = [f"{s.size / 2**20:6.1f} MiB  {s.traceback[0].filename.split('/src/')[-1]}:"
                                     f"{s.traceback[0].lineno}" for s in top]
    else:
        result["peak_delta_kib"] = proc_status_kib("VmHWM") - cur0  # peak over the baseline
        gc.collect()
        result["rss_delta_kib"] = rss_kib() - cur0
    return result


def run_memory(viewers: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("rss", "tracemalloc", "replay"):
        proc = subprocess.run([sys.executable, __file__, "--memory-child", mode, "--memory-viewers", str(viewers)],
                              capture_output=True, text=True, check=False, cwd=ROOT)
        if proc.returncode != 0:
            out[mode] = {"error": proc.stderr.strip()[-600:]}
        else:
            out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# -- output -------------------------------------------------------------------------------
def mib(n_bytes: float | None) -> str:
    return "-" if n_bytes is None else f"{n_bytes / 2**20:,.1f} MiB"


def rate(events: int, seconds: float) -> str:
    return f"{events / seconds:,.0f}" if seconds > 0 else "-"


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(cells))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *map(fmt, rows)])


STREAMS = ("mixed", "heartbeat", "varied", "facts")
STREAM_TITLES = {
    "mixed": "mixed stream (StreamSpec.mixed): ~1,400 viewers who chat, like, gift and buy; transcripts every 1-3 s",
    "heartbeat": "heartbeat-heavy stream (StreamSpec.for_events): 10,000 viewers, mostly heartbeats",
    "varied": "varied stream: the mixed one with no two comments or transcripts alike (StreamSpec.varied_text)",
    "facts": "facts stream: the mixed one, every viewer event naming device, ip and profile (StreamSpec.with_facts)",
}


def load_line() -> str:
    """``uptime``'s load averages, printed beside every figure: the machine is shared."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def compiled_modules() -> list[str]:
    """The livecoupon modules this interpreter imports from compiled extensions (mypyc)."""
    import importlib

    return [name for name in MODULES if is_compiled(importlib.import_module(name))]


def decision_share(run: LivecouponRun) -> float:
    return sum(run.decisions.values()) / run.lines if run.lines else 0.0


def bench_stream(kind: str, args: argparse.Namespace, work: Path, figures: dict[str, Any]) -> list[tuple[str, ...]]:
    """One stream through every engine; prints as it goes, returns the table rows."""
    print(f"\n== {STREAM_TITLES[kind]}", flush=True)
    path = work / f"{kind}.jsonl"
    started = time.perf_counter()
    if kind == "heartbeat":
        lines, spec = write_stream(path, args.events)
    else:
        lines, spec = write_mixed_stream(path, args.events, varied_text=kind == "varied", with_facts=kind == "facts")
    gen_s = time.perf_counter() - started
    stats = stream_stats(path)
    mix = ", ".join(f"{k} {v:,}" for k, v in stats["by_type"].items())
    print(f"stream: {lines:,} lines ({path.stat().st_size / 2**20:,.0f} MiB) in {gen_s:.1f}s; "
          f"{stats['users']:,} viewers over {stats['span_s'] / 3600:.2f} h, online_count up to "
          f"{stats['online_max']:,}\n  {mix}", flush=True)
    if lines < args.events:
        print(f"  note: the simulated broadcast ran out at {lines:,} lines (< {args.events:,})")
    fig: dict[str, Any] = figures.setdefault("streams", {}).setdefault(kind, {})
    fig["stream"] = {"lines": lines, "spec_viewers": spec.viewers, **stats}

    # livecoupon in process
    lc = fastest(args.repeat, lambda: run_livecoupon(path, lines))
    share = decision_share(lc)
    print(f"livecoupon replay(): {lines:,} lines ({lc.applied:,} applied after dedup) in {lc.seconds:.2f}s "
          f"= {rate(lines, lc.seconds)} events/s; {lc.issued:,} issued, "
          f"{sum(lc.decisions.values()) - lc.issued:,} suppressed, {lc.rejected} rejected; "
          f"decisions {share:.1%} of events; {load_line()}", flush=True)
    by_trigger: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for (trig, outcome), n in sorted(lc.decisions.items()):
        by_trigger[trig][outcome] = n
    print("  decisions: " + "; ".join(f"{t} " + ", ".join(f"{o} {n:,}" for o, n in d.items())
                                       for t, d in by_trigger.items()), flush=True)
    fig["livecoupon"] = {"lines": lines, "applied": lc.applied, "seconds": lc.seconds,
                         "events_per_s": lines / lc.seconds, "decisions": by_trigger, "decision_share": share,
                         "rejected": lc.rejected}

    # the CLI, whole process: as installed (compiled if built so), and the pure build beside it
    clis: dict[str, CliRun] = {}
    if not args.skip_cli:
        builds: dict[str, dict[str, str] | None] = {"installed": None}
        if compiled_modules():
            builds = {"compiled": None, "pure": {PURE_ENV: "1"}}
        if args.before is not None:  # another checkout's sources, e.g. a git worktree of an older commit
            builds["before"] = {"PYTHONPATH": str(args.before.resolve() / "src")}
        def one(build: str, env: dict[str, str] | None) -> Callable[[], CliRun]:
            return lambda: run_cli(path, work / f"out-{build}", env)
        fastest_clis = fastest_alternating(args.repeat, {build: one(build, env) for build, env in builds.items()})
        for build, cli in fastest_clis.items():
            ok = cli.exit == 0 and cli.counts["issued"] == lc.issued
            if clis:  # every build writes the same bytes
                first = next(iter(clis))
                cli.same_as_first = all(
                    (work / f"out-{build}" / name).read_bytes() == (work / f"out-{first}" / name).read_bytes()
                    for name in ("issued.jsonl", "suppressed.jsonl", "rejected.jsonl"))
            print(f"livecoupon CLI ({build}): exit {cli.exit} in {cli.seconds:.2f}s wall "
                  f"({cli.cpu_seconds:.2f}s CPU, load {cli.loadavg:.2f} as it ended) = "
                  f"{rate(lines, cli.seconds)} events/s; outputs {cli.counts}"
                  f"{'' if ok else '  <-- differs from in-process run'}; child peak RSS "
                  f"{(cli.peak_rss_kib or 0) / 1024:,.0f} MiB; {load_line()}\n  CLI says: {cli.stderr}", flush=True)
            if cli.same_as_first is not None:
                print(f"  outputs byte for byte the same as the {next(iter(clis))} build's: {cli.same_as_first}")
            clis[build] = cli
            fig[f"cli_{build}"] = vars(cli)

    # durable-rules
    dr = lc3 = None
    lc_prefix = lc
    if not args.skip_durable:
        try:
            from importlib.metadata import version

            import durable  # type: ignore[import-untyped]  # noqa: F401
            dr_version = version("durable_rules")
        except ImportError as exc:
            print(f"durable-rules: not importable ({exc}); install with "
                  f".venv/bin/pip install durable-rules=={DURABLE_VERSION}")
        else:
            limit = args.durable_events if args.durable_events and args.durable_events < lines else None
            dr = fastest(args.repeat, lambda: run_durable(path, limit))
            print(f"durable-rules {dr_version}: {dr.events:,} lines in {dr.seconds:.2f}s = "
                  f"{rate(dr.events, dr.seconds)} events/s; {dr.posted:,} posts, actions "
                  f"{dict(dr.actions)}; {dr.shards} ruleset shard(s), peak {dr.peak_sessions:,} sessions, "
                  f"{dr.deleted:,} delete_state; {load_line()}" + (f"; ERROR {dr.error}" if dr.error else ""),
                  flush=True)
            same = path
            if limit is not None:
                # the same prefix through livecoupon, for a like-for-like ratio and cross-check
                same = work / f"{kind}-prefix.jsonl"
                with path.open(encoding="utf-8") as src, same.open("w", encoding="utf-8") as dst:
                    for i, line in enumerate(src):
                        if i >= limit:
                            break
                        dst.write(line)
                lc_prefix = run_livecoupon(same, limit)
                print(f"livecoupon on the same {limit:,}-line prefix: {lc_prefix.seconds:.2f}s = "
                      f"{rate(limit, lc_prefix.seconds)} events/s")
            lc3 = fastest(args.repeat, lambda: run_livecoupon(same, dr.events, campaign=three_rule_campaign()))
            print(f"livecoupon with only the same 3 triggers ({', '.join(EQUIVALENT_TRIGGERS)}): "
                  f"{lc3.lines:,} lines in {lc3.seconds:.2f}s = {rate(lc3.lines, lc3.seconds)} events/s")
            checks = []
            for trig in EQUIVALENT_TRIGGERS:
                a, b = lc3.by_trigger(trig), dr.decisions[trig]
                if lc_prefix.by_trigger(trig) != a:
                    a_full = lc_prefix.by_trigger(trig)
                    checks.append(f"{trig}: 8-trigger run {a_full:,} vs 3-trigger run {a:,} (DIFFERENT)")
                checks.append(f"{trig} {a:,} vs {b:,}" + ("" if a == b else " (DIFFERENT)"))
            print("  decisions livecoupon vs durable-rules: " + "; ".join(checks), flush=True)
            fig["livecoupon_3_triggers"] = {"lines": lc3.lines, "seconds": lc3.seconds,
                                            "events_per_s": lc3.lines / lc3.seconds}
            fig["durable"] = {"version": dr_version, "lines": dr.events, "seconds": dr.seconds,
                              "events_per_s": dr.events / dr.seconds if dr.seconds else None,
                              "actions": dict(dr.actions), "decisions": dict(dr.decisions),
                              "shards": dr.shards, "peak_sessions": dr.peak_sessions, "error": dr.error,
                              "prefix": limit, "same_decisions": all("DIFFERENT" not in c for c in checks)}

    if args.profile:
        prof = cProfile.Profile()
        run = run_livecoupon(path, lines, profile=prof)
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.sort_stats("tottime").print_stats(args.profile)
        st.sort_stats("cumulative").print_stats(args.profile)
        print(f"\ncProfile of replay() on {lines:,} lines ({run.seconds:.1f}s under the profiler):")
        print(buf.getvalue())

    rows: list[tuple[str, ...]] = [(f"[{kind}] livecoupon replay() in-process", f"{lines:,}", f"{lc.seconds:.2f}",
                                    rate(lines, lc.seconds))]
    for build, cli in clis.items():
        rows.append((f"[{kind}] livecoupon CLI whole process, {build} (CPU {cli.cpu_seconds:.2f}s)", f"{lines:,}",
                     f"{cli.seconds:.2f}", rate(lines, cli.seconds)))
    if dr is not None:
        if lc_prefix is not lc:
            rows.append((f"[{kind}] livecoupon replay() first {lc_prefix.lines:,}", f"{lc_prefix.lines:,}",
                         f"{lc_prefix.seconds:.2f}", rate(lc_prefix.lines, lc_prefix.seconds)))
        if lc3 is not None:
            rows.append((f"[{kind}] livecoupon replay() same 3 triggers", f"{lc3.lines:,}", f"{lc3.seconds:.2f}",
                         rate(lc3.lines, lc3.seconds)))
        rows.append((f"[{kind}] durable-rules {DURABLE_VERSION} (3 rules)" + (" prefix" if lc_prefix is not lc else ""),
                     f"{dr.events:,}", f"{dr.seconds:.2f}", rate(dr.events, dr.seconds)))
        if dr.seconds > 0 and lc_prefix.seconds > 0:
            dr_rate = dr.events / dr.seconds
            ratios = {"replay() in-process, 8 triggers": (lc_prefix.lines / lc_prefix.seconds) / dr_rate}
            if lc3 is not None:
                ratios["replay() in-process, same 3 triggers"] = (lc3.lines / lc3.seconds) / dr_rate
            if limit_free(dr, lines):
                for build, cli in clis.items():
                    if cli.exit == 0:
                        ratios[f"CLI whole process ({build}), 8 triggers"] = (lines / cli.seconds) / dr_rate
            fig["ratios"] = ratios
            for what, r in ratios.items():
                rows.append((f"[{kind}] ratio livecoupon {what} / durable-rules", "", "", f"{r:.1f}x"))
    return rows


def limit_free(dr: DurableRun, lines: int) -> bool:
    """durable-rules read every line (no --durable-events prefix, no early stop): the CLI ratio holds."""
    return dr.events == lines and dr.error is None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="events in each stream (default 1,000,000)")
    ap.add_argument("--stream", choices=(*STREAMS, "both"), default="both",
                    help="which stream: mixed (the figure that counts), heartbeat, varied (the mixed one with "
                         "every text different), facts (the mixed one with device, ip and profile on every viewer "
                         "event), or both (default: mixed and heartbeat)")
    ap.add_argument("--durable-events", type=int, default=None,
                    help="run durable-rules on only the first N lines (default: all of them)")
    ap.add_argument("--memory-viewers", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="run each engine this many times and keep its fastest run (default 3): the machine is shared")
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument("--skip-durable", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--profile", nargs="?", const=30, type=int, metavar="TOP",
                    help="also profile the in-process replay once with cProfile and print the TOP functions")
    ap.add_argument("--before", type=Path, metavar="CHECKOUT",
                    help="also run the CLI on this checkout's src/ (e.g. a git worktree of an older commit)")
    ap.add_argument("--keep", type=Path, help="write the streams and CLI outputs here instead of a temp dir")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    ap.add_argument("--memory-child", choices=("rss", "tracemalloc", "replay"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.memory_viewers)))
        return 0

    mach = machine()
    compiled = compiled_modules()
    print(f"machine: {mach['nproc']} CPUs, {mach['cpu']}, {mach['implementation']} {mach['python']}, "
          f"{load_line()}; livecoupon {mach['commit']}, "
          f"{f'compiled (mypyc): {len(compiled)} modules' if compiled else 'pure Python'}"
          + (f"; sources newer than their build, run instead: {', '.join(outdated)}" if outdated else ""), flush=True)
    figures: dict[str, Any] = {"machine": mach, "compiled": compiled}
    tmp = tempfile.TemporaryDirectory(prefix="livecoupon-bench-") if args.keep is None else None
    work = Path(tmp.name) if tmp is not None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        rows: list[tuple[str, ...]] = []
        for kind in ("mixed", "heartbeat") if args.stream == "both" else (args.stream,):
            rows += bench_stream(kind, args, work, figures)

        mem = None
        if not args.skip_memory:
            mem = run_memory(args.memory_viewers)
            for mode, r in mem.items():
                if "error" in r:
                    print(f"memory ({mode}): FAILED {r['error']}")
            t = mem.get("tracemalloc", {})
            if "top_allocations" in t:
                print("  largest allocations with", f"{args.memory_viewers:,} present viewers:\n    "
                      + "\n    ".join(t["top_allocations"]))
            figures["memory"] = mem

        print("\n" + table(rows, ("throughput", "events", "seconds", "events/s")))
        mrows: list[tuple[str, ...]] = []
        for kind, fig in figures.get("streams", {}).items():
            for build in ("installed", "compiled", "pure", "before"):
                cli = fig.get(f"cli_{build}")
                if cli and cli.get("peak_rss_kib"):
                    mrows.append((f"[{kind}] CLI ({build}) replay of {fig['stream']['lines']:,} events, "
                                  "peak RSS (VmHWM)", mib(cli["peak_rss_kib"] * 1024)))
        if mem is not None:
            v = f"{args.memory_viewers:,} present viewers"
            r, t, rp = mem.get("rss", {}), mem.get("tracemalloc", {}), mem.get("replay", {})
            if "peak_delta_kib" in r:
                mrows.append(("interpreter + imports baseline RSS (child)", mib(r["baseline_rss_kib"] * 1024)))
                mrows.append((f"engine+store, {v}: peak RSS over baseline (VmHWM; {r['events']:,} events, "
                              f"{r['seconds']:.1f}s)", mib(r["peak_delta_kib"] * 1024)))
                mrows.append((f"engine+store, {v}: RSS growth at end", mib(r["rss_delta_kib"] * 1024)))
            if "tracemalloc_peak" in t:
                mrows.append((f"engine+store, {v}: tracemalloc peak", mib(t["tracemalloc_peak"])))
                mrows.append((f"engine+store, {v}: retained at end ({t['timers']:,} timers pending)",
                              mib(t["tracemalloc_current"])))
                mrows.append(("  per present viewer", f"{t['tracemalloc_current'] / args.memory_viewers:,.0f} B"))
            if "tracemalloc_peak" in rp:
                mrows.append((f"whole replay() path, {v}: tracemalloc peak", mib(rp["tracemalloc_peak"])))
        if mrows:
            print("\n" + table(mrows, ("memory", "")))
        print(f"\nmachine: nproc {mach['nproc']}, CPU {mach['cpu']}, {mach['implementation']} {mach['python']}, "
              f"load average at start {mach['loadavg'][0]:.2f}, at the end: {load_line()} "
              "(2 cores shared: expect noise)")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False, default=str))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
