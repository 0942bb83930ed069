"""The ``livecoupon`` command. Each sub-command only translates arguments into core calls."""

from __future__ import annotations

import gc
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from livecoupon.campaign_file import CampaignError, load_campaign, load_campaigns
from livecoupon.cluster.partitions import DEFAULT_PARTITIONS, Role
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.durations import format_duration
from livecoupon.domain.money import format_yuan
from livecoupon.engine.campaigns import DeploymentError
from livecoupon.engine.clock import ClockMode
from livecoupon.store.port import collector_paused

if TYPE_CHECKING:
    import socket

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="livecoupon — 直播间自动发券 / coupons issued automatically inside live streams.")
err = Console(stderr=True, soft_wrap=True)  # a reason is one line whatever the width: scripts read it whole
out = Console()

UNUSABLE = 2
T = TypeVar("T")
DEMO_CAMPAIGN = Path(__file__).resolve().parent / "sim" / "campaign.yaml"  # installed with the package: any folder


CONFIG_HELP = ("活动文件（YAML）或其文件夹；多个活动同一部署时重复此项 / "
               "campaign file (YAML), or a folder of them; repeat for several campaigns in one deployment")

EVENTS_HELP = "事件文件，每行一个 JSON 对象 / recorded events, one JSON object a line"
DB_HELP = "内嵌存储的 SQLite 文件 / SQLite file of the embedded store"


def _campaign_or_exit(path: Path) -> Campaign:
    try:
        return load_campaign(path)
    except CampaignError as exc:
        _unusable(exc, str(path))


def _campaigns_or_exit(paths: Sequence[Path]) -> list[tuple[Campaign, str]]:
    """Every campaign ``--config`` names (files, folders), with its file's text."""
    try:
        return load_campaigns(paths)
    except CampaignError as exc:
        _unusable(exc, ", ".join(map(str, paths)))


def _unusable(exc: CampaignError, where: str) -> NoReturn:
    err.print(f"[bold red]活动配置无效 / unusable campaign file[/] {escape(where)}:", highlight=False)
    for line in exc.errors:
        err.print(f"  {line}", highlight=False, markup=False)
    raise typer.Exit(UNUSABLE) from None


def _unreadable(path: Path, exc: Exception) -> NoReturn:
    err.print(f"无法读取事件文件 / cannot read events file {path}: {exc}", markup=False)
    raise typer.Exit(UNUSABLE) from None


@app.command()
def check(config: Annotated[list[Path], typer.Argument(help=CONFIG_HELP)]) -> None:
    """检查活动配置 / Validate campaign files (and that they can run together) and summarise each one's coupons
    and triggers."""
    for campaign, _ in _campaigns_or_exit(config):
        _summarise(campaign)


def _summarise(campaign: Campaign) -> None:
    from rich.table import Table

    from livecoupon.delivery.messages import describe_coupon

    # names and titles are the campaign file's: escaped, so "[new]" shows and "[/x]" is no closing tag
    rooms = escape("全部直播间 / every room" if campaign.rooms is None else ", ".join(campaign.rooms))
    out.print(f"[bold green]✓[/] 活动 / campaign [bold]{escape(campaign.campaign)}[/] — 直播间 / rooms: {rooms}")
    coupons = Table(title="券模板 / coupon templates")
    for column in ("名称 name", "标题 title", "优惠 terms", "有效期 validity", "库存 stock", "范围 scope"):
        coupons.add_column(column)
    for t in campaign.coupons.values():
        validity = (format_duration(t.valid_for_ms) if t.valid_for_ms is not None
                    else "至 " + _utc(t.valid_until_ms or 0, "%Y-%m-%d %H:%M UTC"))
        scope = t.terms.scope.to_json()
        coupons.add_row(*map(escape, (t.name, t.title, describe_coupon(t), validity,
                                      "不限 unlimited" if t.stock is None else str(t.stock),
                                      "全场 all" if scope == "all" else str(scope))))
    out.print(coupons)
    triggers = Table(title="触发规则 / triggers (decided in this order)")
    for column in ("#", "名称 name", "时机 when", "券 coupon", "对象 audience", "每设备 per_device"):
        triggers.add_column(column)
    for trig in campaign.triggers:
        coupon = (trig.coupon or "") if trig.offer is None else "offer: " + " / ".join(
            a or "null" for a in trig.offer.arms)
        triggers.add_row(*map(escape, (str(trig.index), trig.name, trig.when.value, coupon, trig.audience.value,
                                       _shown(trig.per_device))))
    out.print(triggers)
    limits = campaign.limits
    out.print(f"频控 / limits: per_user={_shown(limits.per_user)}, "
              f"min_interval={_shown(limits.min_interval_ms, format_duration)}, budget={_shown(limits.budget, _yuan)}, "
              f"room_budget={_shown(limits.room_budget, _yuan)}, max_risk={_shown(limits.max_risk)}")
    out.print(f"在场超时 / presence_timeout={format_duration(campaign.presence_timeout_ms)}, "
              f"归因窗口 / attribution_window={format_duration(campaign.attribution_window_ms)}, "
              f"seed={campaign.seed}", highlight=False)
    if campaign.starts_at is not None or campaign.ends_at is not None:
        out.print(f"时间表 / schedule: {_shown(campaign.starts_at, _utc)} → {_shown(campaign.ends_at, _utc)}",
                  highlight=False)
    if campaign.ledger is not None:
        out.print(f"商家券系统 / ledger: {campaign.ledger.platform} {escape(campaign.ledger.url)} "
                  f"(secret: ${campaign.ledger.secret_env}, timeout {format_duration(campaign.ledger.timeout_ms)})",
                  highlight=False)
    for e in campaign.experiments:
        arms = ", ".join(f"{v.name}({v.coupon or '对照 holdout'}, w={v.weight:g})" for v in e.variants)
        out.print(f"实验 / experiment {e.name} on {e.trigger}: {arms}", markup=False)


def _shown(value: T | None, show: Callable[[T], str] = str) -> str:
    """A setting as ``check`` prints it: ``-`` where it is not set."""
    return "-" if value is None else show(value)


def _yuan(fen: int) -> str:
    return format_yuan(fen) + " 元"


def _utc(ms: int, form: str = "%Y-%m-%d %H:%M:%S UTC") -> str:
    return time.strftime(form, time.gmtime(ms / 1000))


@app.command()
def replay(
    events: Annotated[Path, typer.Argument(help=EVENTS_HELP)],
    config: Annotated[list[Path], typer.Option("--config", help=CONFIG_HELP)],
    out_dir: Annotated[Path, typer.Option("--out", help="输出目录 / directory for issued/suppressed/rejected.jsonl")],
) -> None:
    """重放事件流 / Replay a recorded stream on a simulated clock and write every decision (with several
    campaigns, each one's in campaign-id order for each event, as a deployment of them decides)."""
    from livecoupon.engine.recordings import Recording, UnreadableRecording
    from livecoupon.engine.replay import replay_to

    campaigns = [campaign for campaign, _ in _campaigns_or_exit(config)]
    started = time.perf_counter()
    with collector_paused():
        try:
            result = replay_to(campaigns, Recording(events), out_dir)  # read as it is replayed
        except UnreadableRecording as exc:
            _unreadable(events, exc)
        except OSError as exc:
            err.print(f"无法写入 / cannot write to {out_dir}: {exc}", markup=False)
            raise typer.Exit(UNUSABLE) from None
        # The engines' state is kept in reference cycles (bound methods in their handler tables): left to
        # the collector, it would be traversed and freed once the command returns and traversed again as
        # the interpreter exits (1.6% of a 1,000,000-line replay, callgrind). The process ends with the
        # command, so it is frozen out of the collector instead, and its memory goes with the process.
        gc.freeze()
    elapsed = time.perf_counter() - started
    issued = sum(1 for d in result.decisions if d.issued)
    err.print(f"重放完成 / replayed {result.events:,} events in {elapsed:.2f}s: "
              f"{issued:,} issued, {len(result.decisions) - issued:,} suppressed, "
              f"{len(result.rejected):,} rejected → {out_dir}", highlight=False)


@app.command()
def report(
    events: Annotated[Path, typer.Argument(help=EVENTS_HELP)],
    config: Annotated[list[Path], typer.Option("--config", help=CONFIG_HELP)],
    out_dir: Annotated[Path, typer.Option("--out", help="报告目录 / directory for report.html and metrics.json "
                                                        "(with several campaigns, a folder of each campaign's)")],
) -> None:
    """分析报告 / Analyse a recorded stream offline: report.html and metrics.json."""
    from livecoupon.analytics.publish import write_report
    from livecoupon.engine.recordings import Recording, UnreadableRecording, read_for_replay
    from livecoupon.engine.replay import replay

    campaigns = [campaign for campaign, _ in _campaigns_or_exit(config)]
    recording = Recording(events)  # read as replay reads it, and once more for the events
    try:
        result = replay(campaigns, recording)
        parsed, _ = read_for_replay(recording)  # as replay takes them: an id's later copies in a room dropped
    except UnreadableRecording as exc:
        _unreadable(events, exc)
    for campaign in campaigns:
        where = out_dir if len(campaigns) == 1 else out_dir / campaign.campaign
        records = [d.record() for d in result.decisions if d.request.campaign == campaign.campaign]
        metrics = write_report(campaign, records, parsed, where)
        err.print(f"报告已生成 / report written: {where / 'report.html'} "
                  f"({metrics['totals']['issued']:,} coupons issued, {metrics['totals']['orders']:,} orders)",
                  highlight=False)


_CREDENTIAL_NAMES = {"LIVECOUPON_API_KEY": "运营密钥 / operator key",
                     "LIVECOUPON_PLATFORM_KEY": "平台密钥 / platform key",
                     "LIVECOUPON_VIEWER_SECRET": "观众令牌签名密钥 / viewer-token secret"}


CLAIMS_HELP = ("计数放在 Redis / redis://…: keep the claims' counters in Redis (with --store; recorded for the "
               "deployment, so its other processes follow); postgresql: move them back to PostgreSQL (counted "
               "again from the decisions)")


@app.command()
def serve(
    config: Annotated[list[Path], typer.Option("--config", help=CONFIG_HELP)],
    db: Annotated[Path, typer.Option("--db", help=DB_HELP)] = Path("livecoupon.db"),
    host: Annotated[str, typer.Option("--host", help="监听地址 / address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="监听端口（0：任一空闲端口） / port (0: any free one)")] = 8000,
    clock: Annotated[ClockMode, typer.Option("--clock", help="服务时间 / the service's time: wall, the machine's "
                                                             "clock (events checked against it); event, the latest "
                                                             "event's ts, as in replay")
                     ] = ClockMode.WALL,
    store: Annotated[str | None, typer.Option("--store", help="PostgreSQL 存储 / "
                                                              "postgresql://… instead of the SQLite file")] = None,
    name: Annotated[str, typer.Option("--name", help="部署的命名空间 / "
                                                     "namespace of this deployment on the store")] = "livecoupon",
    log_format: Annotated[str, typer.Option("--log", metavar="text|json", help="日志格式 / log format: text, "
                                                          "or json: one object a line, every decision with its "
                                                          "ids")] = "text",
    bus: Annotated[str | None, typer.Option("--bus", help="消息总线，横向扩展 / nats://HOST:PORT: scale out "
                                                          "over NATS JetStream (with --store)")] = None,
    role: Annotated[Role, typer.Option("--role", help="进程角色 / scaled out: gateway (HTTP), worker "
                                                      "(the engine), or all")] = Role.ALL,
    partitions: Annotated[int, typer.Option("--partitions", min=1, max=1024,
                                            help="直播间分区数 / "
                                                 "partitions of rooms, fixed by a deployment's first start"
                                            )] = DEFAULT_PARTITIONS,
    claims: Annotated[str | None, typer.Option("--claims", envvar="LIVECOUPON_CLAIMS", help=CLAIMS_HELP)] = None,
) -> None:
    """启动服务 / Run the service on the embedded store (a SQLite file), on PostgreSQL with --store, and
    as gateways and workers over NATS JetStream with --bus (SPEC §7, docs/scaling.md)."""
    import uvicorn

    from livecoupon.api.auth import Credentials
    from livecoupon.api.serving import HttpProtocol
    from livecoupon.bootstrap import LedgerSecretMissing, LogAheadOfClock, Scale, build_app, build_cluster_app
    from livecoupon.logs import configure as configure_logs

    if log_format not in ("text", "json"):
        err.print(f"--log {log_format!r}: 只能是 text 或 json / use text or json", markup=False)
        raise typer.Exit(UNUSABLE)
    configure_logs(log_format)
    loaded = _campaigns_or_exit(config)
    listening = _listen_or_exit(host, port)  # before the store is opened and the credentials are printed
    campaigns, sources = [c for c, _ in loaded], {c.campaign: text for c, text in loaded}
    credentials = Credentials.from_env()
    if bus is None and role is not Role.ALL:
        err.print(f"--role {role.value} 需要 --bus / needs --bus nats://HOST:PORT", markup=False)
        raise typer.Exit(UNUSABLE)
    if bus is not None and store is None:
        err.print("--bus 需要 --store postgresql://… / --bus needs --store postgresql://…", markup=False)
        raise typer.Exit(UNUSABLE)
    if bus is not None and role is Role.GATEWAY and credentials.generated:
        err.print(f"网关之间必须共用凭据 / every gateway must share the credentials: set "
                  f"{', '.join(credentials.generated)}", markup=False)
        raise typer.Exit(UNUSABLE)
    try:
        if bus is None:
            application = build_app(campaigns, db, credentials, clock, store, name, sources, claims)
        else:
            assert store is not None
            application = build_cluster_app(campaigns, credentials, store, name, Scale(bus, role, partitions), clock,
                                            sources, claims)
    except LedgerSecretMissing as exc:
        err.print(f"商家券系统配置无效 / unusable ledger: {exc}", markup=False)
        raise typer.Exit(UNUSABLE) from None
    except (DeploymentError, LogAheadOfClock) as exc:
        err.print(f"无法启动 / cannot start: {exc}", markup=False)
        raise typer.Exit(UNUSABLE) from None
    except Exception as exc:  # sqlite3 and psycopg raise a handful of types for an unusable store
        err.print(f"无法打开数据库 / cannot open the store {store or db}: {exc}", markup=False)
        raise typer.Exit(UNUSABLE) from None
    where = f"{_redacted(store)} ({name})" if store else str(db)
    url = f"http://{_url_host(host)}:{listening.getsockname()[1]}"
    values = credentials.by_env()
    generated = {key: values[key] for key in credentials.generated}
    warnings = credentials.weaknesses()
    if log_format == "json":  # every line of a JSON log is an object, the first one too
        import logging

        served = logging.getLogger("livecoupon.serve")
        served.info("serving", extra={
            "campaigns": [c.campaign for c in campaigns], "url": url, "store": where, "clock": clock.value,
            "bus": bus, "role": role.value if bus else None, "generated_credentials": generated})
        for weakness in warnings:
            served.warning(weakness)
    else:
        scaled = f", bus: {bus}, role: {role.value}" if bus else ""
        names = escape(", ".join(c.campaign for c in campaigns))  # the markup is ours alone, whatever they hold
        # soft_wrap: a line longer than the terminal stays one line, so its URL and credentials copy whole
        err.print(f"livecoupon 服务 / serving campaign [bold]{names}[/] on "
                  + escape(f"{url} (store: {where}, clock: {clock.value}{scaled})"), highlight=False, soft_wrap=True)
        for key, value in generated.items():
            err.print(f"{_CREDENTIAL_NAMES[key]} (set {key} to choose one): {value}", markup=False,
                      highlight=False, soft_wrap=True)
        for weakness in warnings:
            err.print(f"警告 / warning: {weakness}", markup=False, highlight=False, soft_wrap=True)
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning", ws_max_size=64 * 1024,
                                           http=HttpProtocol))
    server.run(sockets=[listening])


def _listen_or_exit(host: str, port: int) -> socket.socket:
    """The service's listening socket, bound before anything else starts: a port in use (or a host this machine
    does not have) is said at once, in both languages, and nothing is opened or printed before it."""
    import errno
    import socket

    # as uvicorn binds a socket it is given: IPv6 for an address with a colon, all interfaces for ""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen(2048)  # listening at once: another process's bind of the port fails from now on
    except OSError as exc:
        listening.close()
        why = "端口已被占用 / the port is in use" if exc.errno == errno.EADDRINUSE else f"{exc}"
        err.print(f"无法监听 / cannot listen on {host}:{port}: {why}", markup=False)
        raise typer.Exit(UNUSABLE) from None
    return listening


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host or "0.0.0.0"  # noqa: S104 - the address "" listens on, said


def _redacted(url: str) -> str:
    """A store URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


@app.command()
def cluster(
    config: Annotated[Path, typer.Option("--config", help="活动文件（YAML）或其文件夹 / "
                                                          "campaign file (YAML), or a folder of them")],
    store: Annotated[str, typer.Option("--store", help="PostgreSQL 存储 / "
                                                       "postgresql://…")] = "postgresql://postgres@127.0.0.1:5432/test",
    bus: Annotated[str, typer.Option("--bus", help="消息总线 / nats://HOST:PORT")] = "nats://127.0.0.1:4222",
    name: Annotated[str, typer.Option("--name", help="部署的命名空间 / "
                                                     "namespace of this deployment")] = "livecoupon_local",
    gateways: Annotated[int, typer.Option("--gateways", min=1, max=8, help="网关进程数 / gateway processes")] = 2,
    workers: Annotated[int, typer.Option("--workers", min=1, max=8, help="工作进程数 / worker processes")] = 2,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="首个网关端口，其余依次 / "
                                                     "the first gateway's port; the others follow")] = 8100,
    clock: Annotated[ClockMode, typer.Option("--clock", help="服务时间 / the service's time (serve --clock)")] = (
        ClockMode.WALL),
    claims: Annotated[str | None, typer.Option("--claims", envvar="LIVECOUPON_CLAIMS", help=CLAIMS_HELP)] = None,
) -> None:
    """本机集群 / Run gateways and workers on this machine (``serve --role``), sharing one set of credentials,
    until Ctrl-C: a scaled-out deployment to try (docs/scaling.md)."""
    from livecoupon.cluster.local import run_local

    _campaigns_or_exit([config])
    if claims is not None:
        from livecoupon.store.postgres import PostgresStore

        PostgresStore(store, name, claims=claims).close()  # recorded: every process it starts claims through it
    run_local(config, store, bus, name, gateways=gateways, workers=workers, port=port, clock=clock.value)


@app.command()
def export(
    out_dir: Annotated[Path, typer.Option("--out", help="导出目录 / directory for events.jsonl, issued.jsonl, "
                                                        "suppressed.jsonl")],
    db: Annotated[Path | None, typer.Option("--db", help=DB_HELP)] = None,
    store: Annotated[str | None, typer.Option("--store", help="横向扩展部署的 PostgreSQL / postgresql://… of a "
                                                              "scaled-out deployment")] = None,
    name: Annotated[str, typer.Option("--name", help="部署的命名空间 / "
                                                     "the deployment's namespace on the store")] = "livecoupon",
    campaign: Annotated[str | None, typer.Option("--campaign", help="只导出一个活动的决策 / "
                                                                    "one campaign's decisions (of a deployment "
                                                                    "of several): a replay of the log with its "
                                                                    "file reproduces them")] = None,
) -> None:
    """导出日志 / Write the service's log and decisions; replaying the log reproduces the decisions."""
    from livecoupon.bootstrap import open_store
    from livecoupon.store.export import export_store
    from livecoupon.store.sqlite import holds_a_store

    if (db is None) == (store is None):
        err.print("给出 --db 或 --store 之一 / give one of --db PATH or --store URL")
        raise typer.Exit(UNUSABLE)
    if db is not None and not db.is_file():
        err.print(f"无法读取 / cannot read the store {db}: no such file", markup=False)
        raise typer.Exit(UNUSABLE)
    source = str(db) if db is not None else _redacted(str(store))
    try:  # opening a store that is not there would make it (its schema in another app's database)
        missing = not holds_a_store(db) if db is not None else not _deployment_exists(str(store), name)
        counts = {} if missing else export_store(open_store(db or Path(), store, name), out_dir, campaign)
    except Exception as exc:  # sqlite3 and psycopg raise a handful of types for an unusable store
        err.print(f"无法导出 / cannot export {source}: {exc}", markup=False)
        raise typer.Exit(UNUSABLE) from None
    if missing:
        what = "no livecoupon store in it (no log, no decisions)" if db is not None else \
            f"no deployment named {name!r} there (--name)"
        err.print(f"无法导出 / cannot export {source}: {what}", markup=False)
        raise typer.Exit(UNUSABLE)
    err.print(f"导出完成 / exported {counts['events']:,} events, {counts['issued']:,} issued, "
              f"{counts['suppressed']:,} suppressed → {out_dir}", highlight=False)


def _deployment_exists(url: str, name: str) -> bool:
    from livecoupon.store.postgres import deployment_exists  # psycopg: the distributed extra, not every install's

    return deployment_exists(url, name)


def _operator_call(method: str, url: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    """One call to a running service with the operator key (``LIVECOUPON_API_KEY``); exits on anything but 200."""
    import os

    import httpx

    key = os.environ.get("LIVECOUPON_API_KEY")
    if not key:
        err.print("设置 LIVECOUPON_API_KEY（运营密钥）/ set LIVECOUPON_API_KEY to the operator key", markup=False)
        raise typer.Exit(UNUSABLE)
    try:
        answer = httpx.request(method, url.rstrip("/") + path, json=body, headers={"X-API-Key": key}, timeout=60)
    except httpx.HTTPError as exc:
        err.print(f"无法连接 / cannot reach {url}: {exc}", markup=False)
        raise typer.Exit(UNUSABLE) from None
    if answer.status_code != 200:
        try:
            error = answer.json()["error"]
            message = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            message = answer.text[:500]
        err.print(f"[bold red]被拒绝 / refused[/] ({answer.status_code}) {escape(message)}", highlight=False)
        raise typer.Exit(UNUSABLE)
    result: dict[str, object] = answer.json()
    return result


@app.command()
def publish(
    config: Annotated[Path, typer.Argument(help="要发布的活动文件 / campaign file (YAML) to publish")],
    url: Annotated[str, typer.Option("--url", help="运行中的服务 / the running service (any gateway, scaled out)")] =
        "http://127.0.0.1:8000",
    note: Annotated[str, typer.Option("--note", help="变更说明，记入日志 / "
                                                     "your words on the change, kept in the log")] = "",
    base_version: Annotated[int | None, typer.Option("--base-version", min=1, help="当前版本不是此版本则拒绝 / "
                                                     "refuse if the version in force is no longer this one")] = None,
) -> None:
    """发布新版本 / Publish a campaign file to a running service as its next version (docs/campaign.md)."""
    _campaign_or_exit(config)
    body: dict[str, object] = {"yaml": config.read_text(encoding="utf-8"), "note": note}
    if base_version is not None:
        body["base_version"] = base_version
    answer = _operator_call("POST", url, "/v1/admin/campaign/publish", body)
    diff = answer.get("diff")
    for line in map(str, diff if isinstance(diff, list) else []):
        out.print(line, markup=False, highlight=False,
                  style="green" if line.startswith("+") else "red" if line.startswith("-") else None)
    if not answer["published"]:
        out.print(f"没有改动 / nothing changed: version {answer['version']} stays in force")
        return
    effect = answer["effect"]
    assert isinstance(effect, dict)
    out.print(f"[bold green]已发布 / published[/] version {answer['version']}", highlight=False)
    out.print(f"{effect['words_zh']}\n{effect['words_en']}", markup=False, highlight=False)


@app.command()
def pull(
    out_file: Annotated[Path, typer.Option("--out", help="当前版本写到哪里 / "
                                                         "where to write the campaign file in force")],
    url: Annotated[str, typer.Option("--url", help="运行中的服务 / the running service")] = "http://127.0.0.1:8000",
    campaign: Annotated[str | None, typer.Option("--campaign", help="哪个活动（部署多个活动时） / which campaign, "
                                                                   "where the service runs several")] = None,
) -> None:
    """取回当前版本 / Write the campaign file in force on a running service (the file to edit and publish)."""
    query = f"?campaign={urllib.parse.quote(campaign)}" if campaign else ""
    answer = _operator_call("GET", url, "/v1/admin/campaign/versions" + query)
    text = answer.get("yaml")
    if not isinstance(text, str):
        err.print("服务未保存启动时的文件 / the service does not hold the file it started with", markup=False)
        raise typer.Exit(UNUSABLE)
    out_file.write_text(text, encoding="utf-8")
    err.print(f"版本 / version {answer['version']} → {out_file}", highlight=False)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="输出目录 / "
                                                        "where events.jsonl, report.html, metrics.json go")] = Path(
        "demo-out"),
    viewers: Annotated[int, typer.Option("--viewers", min=1, max=100_000, help="模拟观众数 / "
                                                                               "simulated viewers")] = 4000,
    minutes: Annotated[int, typer.Option("--minutes", min=1, max=600, help="模拟直播时长（分钟） / "
                                                                           "broadcast minutes")] = 60,
    speed: Annotated[float, typer.Option("--speed", min=0.1, help="每秒模拟多少秒 / "
                                                                  "simulated seconds per second")] = 60.0,
    seed: Annotated[int, typer.Option("--seed", help="随机种子 / random seed of the simulation")] = 42,
    config: Annotated[Path, typer.Option("--config", help="活动文件 / campaign file", show_default=(
        "the demo's own, examples/campaign.yaml"))] = DEMO_CAMPAIGN,
    headless: Annotated[bool, typer.Option("--headless", help="不显示进度和控制台链接 / "
                                                              "no progress display or console links")] = False,
) -> None:
    """模拟直播演示 / Run a simulated broadcast against the embedded service, end to end."""
    from rich.table import Table

    from livecoupon.sim.demo import run_demo

    campaign = _campaign_or_exit(config)
    if campaign.rooms is not None and "room-1" not in campaign.rooms:
        err.print("演示直播间为 room-1 / the demo broadcasts in room-1: list it in the campaign's rooms")
        raise typer.Exit(UNUSABLE)
    metrics = run_demo(config, out_dir, viewers=viewers, minutes=minutes, speed=speed, seed=seed, headless=headless,
                       console=err)
    d = metrics["demo"]
    table = Table(title="演示结果 / demo results (模拟数据 simulated)")
    table.add_column("指标 metric")
    table.add_column("数值 value", justify="right")
    for label, value in [
        ("观众 viewers", f"{d['viewers']:,}"), ("模拟时长 simulated minutes", str(d["minutes"])),
        ("耗时 wall time", f"{d['wall_seconds']:.1f} s"), ("事件 events", f"{d['events']:,}"),
        ("服务吞吐 events/s (while posting)", f"{d['events_per_second']:,}"),
        ("弹窗 popups", f"{d['popups']:,}"),
        ("弹窗延迟 popup latency p50/p99", f"{d['popup_latency_ms']['p50']} / {d['popup_latency_ms']['p99']} ms"),
        ("订单 orders (用券 with coupon)", f"{d['orders']:,} ({d['orders_with_coupon']:,})"),
        ("发券 coupons issued", f"{metrics['totals']['issued']:,}"),
        ("重放一致 replay matches live", "✓" if d["replay_matches_live"] else "✗"),
    ]:
        table.add_row(label, value)
    out.print(table)
    out.print(f"报告 report: {out_dir / 'report.html'}   指标 metrics: {out_dir / 'metrics.json'}   "
              f"事件 events: {out_dir / 'events.jsonl'}")
    if not d["replay_matches_live"]:
        raise typer.Exit(1)


def main() -> None:
    """``livecoupon``: the commands, with a mistake in how one is called said Chinese first, then English (typer
    says it in English alone)."""
    try:
        code = app(prog_name="livecoupon", standalone_mode=False)
    except typer.Abort:  # Ctrl-C at a prompt
        err.print("已中止 / aborted", markup=False)
        code = 1
    except typer.TyperException as exc:  # typer's own click: its exceptions' classes are not public but this one
        if type(exc).__name__ == "NoArgsIsHelpError":  # ``livecoupon`` alone: its help
            exc.show()  # type: ignore[attr-defined]
            code = 0
        else:
            err.print(_usage_error(exc), markup=False, highlight=False, soft_wrap=True)
            code = getattr(exc, "exit_code", UNUSABLE)
    raise SystemExit(code if isinstance(code, int) else 0)


# what a mistake in the command line is, by the class typer raises for it
_USAGE_ERRORS = {"MissingParameter": "缺少参数", "NoSuchOption": "没有这个选项", "BadParameter": "取值无效",
                 "BadOptionUsage": "选项用法有误", "BadArgumentUsage": "参数用法有误"}


def _usage_error(exc: typer.TyperException) -> str:
    """What was wrong with the command line, then where to read how to call it."""
    english = str(getattr(exc, "format_message", exc.__str__)()).replace("Value error, ", "")
    chinese = _USAGE_ERRORS.get(type(exc).__name__, "命令用法有误")
    if getattr(getattr(exc, "param", None), "param_type_name", None) == "option" and chinese == "缺少参数":
        chinese = "缺少选项"
    if english.startswith("No such command"):
        chinese = "没有这个命令"
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "livecoupon"
    return f"{chinese} / {english}\n运行 '{command} --help' 查看用法 / Try '{command} --help' for help."


if __name__ == "__main__":
    main()
