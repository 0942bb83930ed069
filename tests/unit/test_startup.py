"""What ``livecoupon replay`` loads before the first line: no web framework, no pinyin dictionary."""

from __future__ import annotations

import subprocess
import sys


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
