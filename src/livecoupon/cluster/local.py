"""``livecoupon cluster`` (``make cluster``): gateways and workers as processes on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console

from livecoupon.api.auth import Credentials

err = Console(stderr=True)
READY_WITHIN_S = 30.0


def _serve(config: Path, store: str, bus: str, name: str, role: str, port: int, clock: str,
           env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "livecoupon", "serve", "--config", str(config), "--store", store, "--bus", bus,
               "--name", name, "--role", role, "--port", str(port), "--clock", clock]
    return subprocess.Popen(command, env=env)


def run_local(config: Path, store: str, bus: str, name: str, *, gateways: int, workers: int, port: int,
              clock: str) -> None:
    credentials = Credentials.from_env()  # one set for every process: a viewer token works on any gateway
    env = os.environ | {"LIVECOUPON_API_KEY": credentials.api_key,
                        "LIVECOUPON_PLATFORM_KEY": credentials.platform_key,
                        "LIVECOUPON_VIEWER_SECRET": credentials.viewer_secret}
    ports = [port + i for i in range(gateways + workers)]
    roles = ["worker"] * workers + ["gateway"] * gateways
    processes = [_serve(config, store, bus, name, role, p, clock, env) for role, p in zip(roles, ports, strict=True)]
    signal.signal(signal.SIGTERM, _stop)  # a supervisor's stop reaches the processes started here, as Ctrl-C does
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        for p in ports:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{p}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or any(proc.poll() is not None for proc in processes):
                    raise SystemExit("集群未能启动 / the cluster did not start (see the messages above)")
                time.sleep(0.1)
        err.print(f"集群就绪 / cluster ready: deployment {name}, {workers} workers, {gateways} gateways",
                  highlight=False)
        for role, p in zip(roles, ports, strict=True):
            where = "" if role == "worker" else f"  console: http://127.0.0.1:{p}/web/operator.html"
            err.print(f"  {role:<8} http://127.0.0.1:{p}{where}", highlight=False)
        err.print(f"  operator key (LIVECOUPON_API_KEY): {credentials.api_key}\n"
                  f"  platform key (LIVECOUPON_PLATFORM_KEY): {credentials.platform_key}\n"
                  "按 Ctrl-C 停止 / Ctrl-C stops every process", highlight=False)
        while all(proc.poll() is None for proc in processes):
            time.sleep(0.5)
        err.print("有进程退出 / a process exited; stopping the others")
    except KeyboardInterrupt:
        pass
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # (the default would end this process at once, leaving the others running)
