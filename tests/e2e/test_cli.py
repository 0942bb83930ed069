"""The ``livecoupon`` command as scripts use it (SPEC §6): outputs, exit statuses, reasons on stderr."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"
CLI = Path(sys.executable).with_name("livecoupon")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=120)


def write_events(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_replay_writes_the_three_files_and_exits_0_even_with_rejected_lines(tmp_path: Path) -> None:
    events = write_events(tmp_path / "e.jsonl",
                          '{"type": "live_start", "room": "room-1", "ts": 1700000000}',
                          '{"type": "join", "room": "room-1", "ts": 1700000001.5, "user": "alice"}',
                          "",
                          '{"type": "join", "room": "room-1", "ts": 1700000002}',
                          "not json")
    done = run("replay", events, "--config", EXAMPLE, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    issued = [json.loads(x) for x in (tmp_path / "out" / "issued.jsonl").read_text().splitlines()]
    assert [(d["user"], d["trigger"], d["ts"], d["expires_at"]) for d in issued] == [
        ("alice", "newcomer", 1700000001.5, 1700001801.5)]
    assert (tmp_path / "out" / "suppressed.jsonl").read_text() == ""
    rejected = [json.loads(x) for x in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["line"], r["error"].split(" / ")[0]) for r in rejected] == [(4, "user: 必填"), (5, "不是有效的 JSON")]


def test_replay_exits_2_for_an_unusable_config_naming_the_path(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(EXAMPLE.read_text(encoding="utf-8").replace("coupon: dwell10}", "coupon: dwel10}"),
                      encoding="utf-8")
    events = write_events(tmp_path / "e.jsonl", '{"type": "live_start", "room": "room-1", "ts": 1}')
    done = run("replay", events, "--config", config, "--out", tmp_path / "out")
    assert done.returncode == 2
    assert "triggers[7].coupon: 未知的券 / unknown coupon 'dwel10'" in done.stderr
    assert not (tmp_path / "out").exists()


def test_replay_exits_2_for_an_unreadable_events_file(tmp_path: Path) -> None:
    done = run("replay", tmp_path / "missing.jsonl", "--config", EXAMPLE, "--out", tmp_path / "out")
    assert done.returncode == 2 and "missing.jsonl" in done.stderr


def test_check_summarises_a_good_file_and_refuses_a_bad_one(tmp_path: Path) -> None:
    good = run("check", EXAMPLE)
    assert good.returncode == 0 and "double11-live" in good.stdout and "满99减20" in good.stdout
    assert "presence_timeout=1m" in good.stdout and "seed=42" in good.stdout  # every setting, not only some
    risky = tmp_path / "risky.yaml"
    risky.write_text(EXAMPLE.read_text(encoding="utf-8").replace("  per_user: 3", "  per_user: 3\n  max_risk: 0.7"),
                     encoding="utf-8")
    assert "max_risk=0.7" in run("check", risky).stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("campaign: x\nrooms: [r]\ncoupons: {}\ntriggers: []\nlimits: {per_usr: 1}\n", encoding="utf-8")
    refused = run("check", bad)
    assert refused.returncode == 2 and "limits.per_usr: 未知的键 / unknown key" in refused.stderr


def test_check_prints_names_and_titles_as_written_even_when_they_look_like_markup(tmp_path: Path) -> None:
    import os

    text = EXAMPLE.read_text(encoding="utf-8").replace('rooms: ["room-1"]', 'rooms: ["[/x]"]')
    marked = tmp_path / "marked.yaml"
    marked.write_text(text.replace("title: 新人专享券", 'title: "[new] 新人专享券"'), encoding="utf-8")
    done = subprocess.run([str(CLI), "check", str(marked)], capture_output=True, text=True, timeout=120,
                          env=os.environ | {"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert "rooms: [/x]" in done.stdout and "[new] 新人专享券" in done.stdout


def test_report_writes_metrics_and_a_self_contained_page(tmp_path: Path) -> None:
    events = write_events(tmp_path / "e.jsonl",
                          '{"type": "live_start", "room": "room-1", "ts": 1700000000}',
                          '{"type": "join", "room": "room-1", "ts": 1700000001, "user": "alice"}')
    done = run("report", events, "--config", EXAMPLE, "--out", tmp_path / "rep")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["triggers"]["newcomer"]["issued"] == 1
    assert "关键数据指标分析表" in (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")


def test_report_counts_the_events_replay_applies_not_an_ids_later_copies(tmp_path: Path) -> None:
    """SPEC §2: of events sharing an id in a room the first is kept; the report counted every order line."""
    events = write_events(tmp_path / "e.jsonl",
                          '{"type": "live_start", "room": "room-1", "ts": 1700000000}',
                          '{"type": "join", "room": "room-1", "ts": 1700000001, "user": "alice"}',
                          '{"type": "order", "room": "room-1", "ts": 1700000060, "id": "E1", "user": "alice",'
                          ' "order_id": "o1", "amount": 85}',
                          '{"type": "order", "room": "room-1", "ts": 1700000070, "id": "E1", "user": "alice",'
                          ' "order_id": "o2", "amount": 350}')
    done = run("report", events, "--config", EXAMPLE, "--out", tmp_path / "rep")
    assert done.returncode == 0, done.stderr
    totals = json.loads((tmp_path / "rep" / "metrics.json").read_text(encoding="utf-8"))["totals"]
    assert (totals["orders"], totals["gmv"]) == (1, 85)


def test_export_of_an_embedded_store_needs_no_postgresql_driver(tmp_path: Path) -> None:
    """psycopg and redis come with the distributed extra only: export --db must not import them."""
    from livecoupon.store.sqlite import SqliteStore

    SqliteStore(tmp_path / "s.db").close()
    script = ("import sys; sys.modules['psycopg'] = None; sys.modules['redis'] = None; "
              "from livecoupon.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", script, "export", "--db", str(tmp_path / "s.db"), "--out",
                           str(tmp_path / "x")], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "x" / "events.jsonl").exists()


def test_export_of_a_database_that_is_no_store_exits_2_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    """A --db mistyped to another application's SQLite file: opening it as a store wrote livecoupon's schema into it,
    and export said it exported 0 events."""
    import hashlib
    import sqlite3

    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
        db.commit()
    before = hashlib.sha256(other.read_bytes()).hexdigest()
    done = run("export", "--db", other, "--out", tmp_path / "x")
    assert done.returncode == 2 and "no livecoupon store" in done.stderr
    assert hashlib.sha256(other.read_bytes()).hexdigest() == before and not (tmp_path / "x" / "events.jsonl").exists()


def test_pull_and_publish_round_trip_a_running_service_s_campaign(tmp_path: Path) -> None:
    """``pull`` writes the file in force; ``publish`` sends an edit (diff and effect printed), an unchanged
    file publishes nothing, an unusable one is refused with exit 2 and the reason."""
    import os

    from support.credentials import ENV
    from support.server import Server

    def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=120,
                              env=os.environ | ENV)

    with Server(EXAMPLE, tmp_path / "live.db") as server:
        pulled = cli("pull", "--url", server.url, "--out", tmp_path / "v1.yaml")
        assert pulled.returncode == 0, pulled.stderr
        assert (tmp_path / "v1.yaml").read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")
        edited = tmp_path / "v2.yaml"
        edited.write_text(EXAMPLE.read_text(encoding="utf-8").replace("budget: 300000", "budget: 250000"),
                          encoding="utf-8")
        published = cli("publish", edited, "--url", server.url, "--note", "少花点", "--base-version", "1")
        assert published.returncode == 0, published.stderr
        assert "version 2" in published.stdout and "-  budget: 300000" in published.stdout
        assert "limits.budget 立即生效" in published.stdout and "limits.budget hold at once" in published.stdout
        again = cli("publish", edited, "--url", server.url)
        assert again.returncode == 0 and "nothing changed" in again.stdout
        stale = cli("publish", EXAMPLE, "--url", server.url, "--base-version", "1")
        assert stale.returncode == 2 and "version_conflict" in stale.stderr
        broken = tmp_path / "broken.yaml"
        broken.write_text(EXAMPLE.read_text(encoding="utf-8").replace("coupon: newcomer}", "coupon: nobody}"),
                          encoding="utf-8")
        refused = cli("publish", broken, "--url", server.url)
        assert refused.returncode == 2 and "nobody" in refused.stderr  # checked here, before it is sent
        pulled = cli("pull", "--url", server.url, "--out", tmp_path / "now.yaml")
        assert (tmp_path / "now.yaml").read_text(encoding="utf-8") == edited.read_text(encoding="utf-8")


def test_serve_prints_its_campaign_plainly_and_each_generated_credential_on_one_line(tmp_path: Path) -> None:
    """No markup shows through (``[bold]``), and a credential made up for the run is one whole line of a narrow
    terminal's output, so it can be copied; the operator key printed opens the operator's routes."""
    import httpx

    from support.credentials import ENV
    from support.server import Server

    unset = dict.fromkeys(ENV, "") | {"COLUMNS": "60"}  # an empty credential is generated, as an unset one
    with Server(EXAMPLE, tmp_path / "s.db", env=unset) as server:
        lines = server.log.read_text(encoding="utf-8").splitlines()
        [serving] = [line for line in lines if "serving campaign" in line]
        assert f"serving campaign double11-live on {server.url} (store: " in serving and "[" not in serving
        printed = {name: line.partition("to choose one): ")[2] for line in lines for name in ENV
                   if f"set {name} " in line}
        assert list(printed) == list(ENV) and all(len(value) == 43 for value in printed.values())  # token_urlsafe(32)
        health = httpx.get(f"{server.url}/v1/admin/health", headers={"X-API-Key": printed["LIVECOUPON_API_KEY"]})
        assert health.status_code == 200


def test_serve_on_the_wall_clock_refuses_a_log_that_runs_ahead_of_it(tmp_path: Path) -> None:
    # served with --clock event on a stream stamped an hour ahead, then with the wall clock: every event would have
    # been applied at the log's future time (coupons valid an hour too long, timers late); it says so and stops
    import time

    from livecoupon.domain.events import event_json, parse_event
    from livecoupon.store.sqlite import SqliteStore
    from support.credentials import ENV

    store = SqliteStore(tmp_path / "ahead.db")
    ahead = time.time() + 3_600
    with store.unit_of_work():
        store.append_events([event_json(parse_event({"type": "live_start", "room": "room-1", "ts": ahead}))])
    store.close()
    env = {**os.environ, **{name: "k" * 43 for name in ENV}}
    done = subprocess.run([str(CLI), "serve", "--config", str(EXAMPLE), "--db", str(tmp_path / "ahead.db"),
                           "--clock", "wall", "--port", "0"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2, done.stderr
    assert "60 min ahead of this machine's clock" in done.stderr and "--clock event" in done.stderr


def test_serve_on_a_port_in_use_says_so_before_it_opens_or_prints_anything(tmp_path: Path) -> None:
    import socket

    from support.credentials import ENV

    env = {**os.environ, **{name: "k" * 43 for name in ENV}}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([str(CLI), "serve", "--config", str(EXAMPLE), "--db", str(tmp_path / "s.db"),
                               "--port", str(port)], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == f"无法监听 / cannot listen on 127.0.0.1:{port}: 端口已被占用 / the port is in use"
    assert not (tmp_path / "s.db").exists()


def test_serve_with_json_logs_writes_json_from_its_first_line(tmp_path: Path) -> None:
    from support.server import Server

    with Server(EXAMPLE, tmp_path / "j.db", args=("--log", "json")) as server:
        first = json.loads(server.log.read_text(encoding="utf-8").splitlines()[0])
    assert first["message"] == "serving" and first["url"] == server.url and first["campaigns"] == ["double11-live"]


def test_a_mistake_in_the_command_line_is_said_chinese_first_then_english() -> None:
    cases = {("check",): "缺少参数 / Missing argument 'config'.",
             ("serve",): "缺少选项 / Missing option '--config'.",
             ("check", EXAMPLE, "--bogus"): "没有这个选项 / No such option: --bogus",
             ("bogus",): "没有这个命令 / No such command 'bogus'.",
             ("serve", "--config", EXAMPLE, "--clock", "bogus"):
                 "取值无效 / Invalid value for '--clock': 'bogus' is not one of 'wall', 'event'."}
    for args, said in cases.items():
        done = run(*args)
        command = "livecoupon" if args == ("bogus",) else f"livecoupon {args[0]}"
        assert done.returncode == 2, args
        hint = f"运行 '{command} --help' 查看用法 / Try '{command} --help' for help."
        assert done.stderr.splitlines() == [said, hint]
    assert run().returncode == 0 and "Usage: livecoupon" in run().stdout  # alone: its help


def test_every_option_and_argument_says_what_it_is_chinese_first() -> None:
    import typer

    from livecoupon.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    unsaid = [f"{name} {param.name}" for name, command in commands.items() for param in command.params
              if not param.help or not ("\u4e00" <= param.help[0] <= "\u9fff" or param.help.startswith("PostgreSQL"))
              or " / " not in param.help]
    assert not unsaid, unsaid


def test_serve_warns_of_weak_or_shared_credentials_and_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    from support.server import Server

    weak = {"LIVECOUPON_VIEWER_SECRET": "short", "LIVECOUPON_API_KEY": "one-key-for-both-roles",
            "LIVECOUPON_PLATFORM_KEY": "one-key-for-both-roles"}
    with Server(EXAMPLE, tmp_path / "w.db", env=weak) as server:
        warnings = [line for line in server.log.read_text(encoding="utf-8").splitlines() if "warning" in line]
    assert len(warnings) == 2 and all(line.startswith("警告 / warning: LIVECOUPON_") for line in warnings)
    assert "VIEWER_SECRET" in warnings[0] and "PLATFORM_KEY" in warnings[1]
    out_of_range = run("serve", "--config", EXAMPLE, "--port", "70000")
    assert out_of_range.returncode == 2 and out_of_range.stderr.startswith("取值无效 / Invalid value for '--port'")
