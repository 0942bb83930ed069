"""What a command loads before it works: replay no web framework and no pinyin dictionary, a server no scipy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CAMPAIGN = Path(__file__).resolve().parents[2] / "bench" / "campaign.yaml"  # every trigger kind


def loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return set(done.stdout.split())


def test_the_replay_command_loads_no_web_framework_and_no_pinyin() -> None:
    loaded = loaded_after("import livecoupon.cli, livecoupon.engine.replay")
    assert loaded.isdisjoint({"fastapi", "starlette", "uvicorn", "httpx", "pypinyin", "numpy", "scipy"}), loaded


def test_pinyin_loads_only_when_a_transcript_needs_it() -> None:
    code = ("from livecoupon.engine.phrases import PhraseMatcher\n"
            "m = PhraseMatcher(['发券啦'])\nassert m.matches('宝宝们发券啦')\nimport sys\n"
            "assert 'pypinyin' not in sys.modules\nassert m.matches('发劝啦')")
    assert "pypinyin" in loaded_after(code)


def test_a_whole_replay_run_loads_no_web_framework_and_no_pinyin_without_transcripts(tmp_path: Path) -> None:
    """The command itself, not just its imports: a stream of joins, comments and gifts."""
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in [
        {"type": "live_start", "room": "bench-room-1", "ts": 1},
        {"type": "join", "room": "bench-room-1", "ts": 2, "user": "u"},
        {"type": "comment", "room": "bench-room-1", "ts": 3, "user": "u", "text": "扣1"},
        {"type": "gift", "room": "bench-room-1", "ts": 4, "user": "u", "value": 1}]) + "\n", encoding="utf-8")
    run = (f"import sys\nsys.argv = ['livecoupon', 'replay', {str(events)!r}, '--config', {str(CAMPAIGN)!r}, "
           f"'--out', {str(tmp_path / 'out')!r}]\nfrom livecoupon.cli import main\ntry:\n    main()\n"
           "except SystemExit as exit:\n    assert not exit.code, exit.code")
    loaded = loaded_after(run)
    assert loaded.isdisjoint({"fastapi", "starlette", "uvicorn", "httpx", "pypinyin", "numpy", "scipy"}), loaded
    assert (tmp_path / "out" / "issued.jsonl").read_text(encoding="utf-8").count("\n") >= 1


def test_a_server_starts_without_scipy_until_metrics_need_it() -> None:
    """scipy's statistics are a second of a restart's imports; only A/B statistics use them."""
    assert "scipy" not in loaded_after("import livecoupon.bootstrap")
    lift = ("import livecoupon.bootstrap\nfrom livecoupon.analytics.stats import welch_lift\n"
            "assert welch_lift([0, 1, 1, 0], [0, 0, 1, 0]) is not None")
    assert "scipy" in loaded_after(lift)


def test_a_campaign_without_a_ledger_loads_no_event_loop() -> None:
    """asyncio (and ssl with it) comes with the Douyin ledger's client, which only a campaign with a ledger needs."""
    loaded = loaded_after(f"from livecoupon.campaign_file import load_campaign\nload_campaign({str(CAMPAIGN)!r})")
    assert loaded.isdisjoint({"asyncio", "ssl"}), loaded
