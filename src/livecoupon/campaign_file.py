"""Read and validate a campaign file (SPEC §3) into a :class:`Campaign`.

pydantic checks the shape (types, unknown keys); the semantic pass below checks what
depends on other keys. Every error names its path, and says the problem in Chinese, then
in English: ``triggers[2].coupon: 未知的券 / unknown coupon 'dwel10'``.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, StrictInt, ValidationError

from livecoupon.domain.campaign import (
    OFFER,
    Audience,
    Campaign,
    DeliveryPolicy,
    Experiment,
    Ledger,
    Limits,
    Trigger,
    Variant,
    When,
)
from livecoupon.domain.coupons import CouponKind, CouponTemplate, Scope, Terms
from livecoupon.domain.durations import parse_duration_ms
from livecoupon.domain.events import CAMPAIGN_WIDE, LAST_MS, MAX_NAME
from livecoupon.domain.money import yuan_to_fen
from livecoupon.domain.offers import Offer
from livecoupon.domain.text import normalise
from livecoupon.errors import dotted, validation_words


class CampaignError(ValueError):
    """The campaign file cannot be used; ``errors`` lists every ``path: problem``."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# Problems said in several places: Chinese first (the operator's), then the English the docs and tests quote
_REQUIRED = "必填 / required"
_POSITIVE = "必须大于 0 / must be > 0"
_NOT_NEGATIVE = "不能小于 0 / must be ≥ 0"
_ONE_OR_MORE = "至少为 1 / must be ≥ 1"
_NOT_EMPTY = "不能为空 / must not be empty"
_MAPPING = "必须是键值映射 / must be a mapping of keys"


def _unknown_coupon(name: str) -> str:
    return f"未知的券 / unknown coupon {name!r}"


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("必须是数字，不能是 true/false / must be a number, not true/false")
    return value


def _time(value: Any) -> Any:
    """A time in the file: ISO 8601 text in any form Python reads (``+08``, the basic ``20261111T235959+0800``, a
    space for ``T``) or a YAML timestamp; never a number, which would be read as Unix seconds (``valid_until:
    20261111`` was a day in 1970, and every decision of its coupon ``template_expired``)."""
    if isinstance(value, (bool, int, float)):
        raise ValueError("必须是带时区的 ISO 8601 时间，不能是数字 / "
                         f"must be an ISO 8601 time with its UTC offset, e.g. {_EXAMPLE_TIME}, not a number")
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"不是 ISO 8601 时间 / not an ISO 8601 time: {value!r} (e.g. {_EXAMPLE_TIME})") from None
    return value


_EXAMPLE_TIME = "2026-11-11T23:59:59+08:00"
Time = Annotated[dt.datetime, BeforeValidator(_time)]
def _whole(value: Any) -> Any:
    """A whole number as YAML 1.2 may write it, ``1e4`` (a float) included; anything else as given, for ``StrictInt``
    to refuse (true/false, 2.5, "3")."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Whole = Annotated[StrictInt, BeforeValidator(_whole)]
Fen = Annotated[int, BeforeValidator(yuan_to_fen)]  # (their errors: ValueErrors, in both languages)
Number = Annotated[float, BeforeValidator(_number)]
Millis = Annotated[int, BeforeValidator(parse_duration_ms)]
Name = Annotated[str, BeforeValidator(lambda v: v if not isinstance(v, str) else v.strip())]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class ScopeModel(_Strict):
    products: list[str] = []
    categories: list[str] = []
    exclude_products: list[str] = []
    exclude_categories: list[str] = []


class CouponModel(_Strict):
    title: str
    kind: Literal["threshold", "percent", "no_threshold"]
    threshold: Fen | None = None
    amount: Fen | None = None
    percent: Number | None = None
    max_discount: Fen | None = None
    scope: Literal["all"] | ScopeModel = "all"
    valid_for: Millis | None = None
    valid_until: Time | None = None
    stock: Whole | None = None


class OfferModel(_Strict):
    arms: list[str | None]
    explore: Number = 0.1
    plan: Millis | None = None


class TriggerModel(_Strict):
    name: Name
    when: Literal["first_visit", "dwell", "online_reached", "host_says", "flash_sale", "comment"]
    coupon: str | None = None
    offer: OfferModel | None = None
    after: Millis | None = None
    count: Whole | None = None
    source: Literal["reported", "present"] | None = None
    audience: Literal["present", "lottery", "commenters", "top_gifters"] | None = None
    winners: Whole | None = None
    within: Millis | None = None
    top: Whole | None = None
    phrases: list[str] | None = None
    cooldown: Millis | None = None
    keywords: list[str] | None = None
    per_device: Whole | None = None
    budget: Fen | None = None


class LimitsModel(_Strict):
    per_user: Whole | None = None
    min_interval: Millis | None = None
    budget: Fen | None = None
    max_risk: Number | None = None
    room_budget: Fen | None = None


class VariantModel(_Strict):
    name: Name
    weight: Number = 1.0
    coupon: str | None


class ExperimentModel(_Strict):
    name: Name
    trigger: str
    salt: str | None = None
    variants: list[VariantModel]


class DeliveryModel(_Strict):
    quiet_period: Millis = 0
    room_rate: Number | None = None
    max_mute: Millis = 2 * 3_600_000


class LedgerModel(_Strict):
    url: str | None = None
    secret_env: str
    timeout: Millis = 2_000
    platform: Literal["webhook", "douyin"] = "webhook"
    app_id: str | None = None
    client_key: str | None = None
    activities: dict[str, str] | None = None
    rate: Number | None = None


class ScheduleModel(_Strict):
    start: Time | None = None
    end: Time | None = None


class CampaignModel(_Strict):
    campaign: str
    rooms: Literal["*"] | list[str]
    presence_timeout: Millis = 60_000
    seed: Whole = 0
    attribution_window: Millis = 30 * 60_000
    coupons: dict[str, CouponModel]
    triggers: list[TriggerModel]
    limits: LimitsModel = LimitsModel()
    experiments: list[ExperimentModel] = []
    delivery: DeliveryModel = DeliveryModel()
    ledger: LedgerModel | None = None
    schedule: ScheduleModel = ScheduleModel()


# Keys a trigger may carry besides name/when/coupon, by `when`.
_TRIGGER_KEYS: dict[str, set[str]] = {
    "first_visit": set(),
    "dwell": {"after"},
    "online_reached": {"count", "source", "audience", "winners"},
    "host_says": {"phrases", "cooldown", "audience", "within", "top"},
    "flash_sale": set(),
    "comment": {"keywords"},
}
_AUDIENCES = {"online_reached": {"present", "lottery"}, "host_says": {"present", "commenters", "top_gifters"}}


def load_campaign(path: str | Path) -> Campaign:
    """Read a campaign file; raise :class:`CampaignError` naming every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignError([_unreadable(path, exc)]) from None
    return parse_campaign(text, str(path))


def _unreadable(path: str | Path, exc: Exception) -> str:
    return f"{path}: 无法读取 / cannot read: {exc}"


def campaign_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files ``--config`` names: each path a file, or a folder of ``*.yaml``/``*.yml`` files (by name)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
            if not found:
                raise CampaignError([f"{path}: 文件夹里没有活动文件（*.yaml） / "
                                     "a folder with no campaign file (*.yaml) in it"])
            files.extend(found)
        else:
            files.append(path)
    return files


def load_campaigns(paths: Iterable[str | Path]) -> list[tuple[Campaign, str]]:
    """Every campaign file ``--config`` names, each read (with its text); :class:`CampaignError` lists every
    problem of every file, each prefixed with its file where there are several, and a campaign id used twice."""
    files = campaign_files(paths)
    loaded: list[tuple[Campaign, str]] = []
    errors: list[str] = []
    seen: dict[str, Path] = {}
    for path in files:
        prefix = f"{path}: " if len(files) > 1 else ""
        try:
            text = path.read_text(encoding="utf-8")
            campaign = parse_campaign(text, str(path))
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(_unreadable(path, exc))
            continue
        except CampaignError as exc:
            errors.extend(prefix + e for e in exc.errors)
            continue
        if campaign.campaign in seen:
            other = seen[campaign.campaign]
            errors.append(f"{path}: campaign: 活动 id 与 {other} 重复 / {campaign.campaign!r} is also the id of "
                          f"{other} (each campaign of a deployment needs its own id)")
            continue
        seen[campaign.campaign] = path
        loaded.append((campaign, text))
    if len(loaded) > 1:
        errors.extend(_together(loaded))
    if errors:
        raise CampaignError(errors)
    return loaded


def _together(loaded: list[tuple[Campaign, str]]) -> list[str]:
    """What keeps campaigns from running in one deployment: a merchant ledger is set up for one campaign's
    process; popups are paced per viewer across every campaign, so by one ``delivery``."""
    errors = [f"{c.campaign}: ledger: 接入商家券系统的活动须单独部署 / "
              "a campaign with a merchant ledger runs in a deployment of its own"
              for c, _ in loaded if c.ledger is not None]
    first = loaded[0][0]
    errors.extend(f"{c.campaign}: delivery: 与 {first.campaign} 的设置不同，同一部署的弹窗节奏须一致 / "
                  f"differs from {first.campaign}'s; the campaigns of a deployment pace popups alike"
                  for c, _ in loaded[1:] if c.delivery != first.delivery)
    return errors


_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser: ~5× faster


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """``yaml.safe_load`` as a campaign is read: a key given twice in one mapping is an error (a second ``triggers:``
    left from a paste dropped every trigger of the first, without a word), and plain scalars are typed as YAML 1.2
    types them: only ``true``/``false`` are booleans (``on``, ``yes``, ``no``, ``off`` stay the words they are), and
    numbers are decimal (``017`` is 17, not octal 15; ``1:30`` is no sexagesimal 90) or ``0o``/``0x``; ``1e3`` is a
    number."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # a key a merge (<<: *base) brings may be given again: that is what merging is for
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in first:
                raise _DuplicateKey(key, line, first[key], key_node.start_mark)
            if isinstance(key, (str, int, float, bool)):
                first[key] = line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A key given twice in one mapping; ``chinese`` says so too."""

    def __init__(self, key: object, line: int, first: int, mark: yaml.Mark) -> None:
        super().__init__(None, None, f"duplicate key {key!r} on line {line} (first on line {first}): each key once",
                         mark)
        self.chinese = f"键 {key!r} 重复（第 {line} 行，首次在第 {first} 行），每个键只写一次"


def _yaml_12_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    sign, digits = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
    if digits[:2] in ("0o", "0x"):
        return sign * int(digits[2:], 8 if digits[1] == "o" else 16)
    return sign * int(digits)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
# (digits may be grouped with "_", as YAML 1.1 and Python allow: stock: 10_000 was read so before)
_Loader.add_implicit_resolver("tag:yaml.org,2002:int",
                              re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7][0-7_]*|0x[0-9a-fA-F][0-9a-fA-F_]*)$"),
                              list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"))
_Loader.add_constructor("tag:yaml.org,2002:int", _yaml_12_int)


_OPTIONAL_SECTIONS = ("limits", "experiments", "delivery", "ledger", "schedule")


def parse_campaign(text: str, name: str | None = None) -> Campaign:
    """A campaign file's text, read; :class:`CampaignError` lists every problem. ``name``: the file's, which a
    YAML syntax error names with its line and column."""
    source: str | io.StringIO = text
    if name is not None:
        source = io.StringIO(text)
        source.name = name  # what PyYAML's marks name (for a string: "<unicode string>")
    try:
        data = yaml.load(source, Loader=_Loader)  # noqa: S506 (a safe loader: _Loader is yaml.SafeLoader's kind)
    except yaml.YAMLError as exc:
        chinese = exc.chinese if isinstance(exc, _DuplicateKey) else "YAML 格式有误"
        raise CampaignError([f"{chinese} / not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise CampaignError(["活动文件必须是键值映射（campaign、rooms、coupons、triggers 等） / "
                             "the campaign file must be a mapping of keys (campaign, rooms, coupons, triggers, …)"])
    for key in _OPTIONAL_SECTIONS:  # left empty (its lines commented out, say): not set, as if left out
        if key in data and data[key] is None:
            del data[key]
    try:
        model = CampaignModel.model_validate(data)
    except ValidationError as exc:
        shape = _shape_errors(exc, data)
        raise CampaignError(shape + [e for e in _unknown_coupons(data) if e not in shape]) from None
    return _Builder(model).build()


def _unknown_coupons(data: dict[str, Any]) -> list[str]:
    """The coupons the file names but does not define, read from the file as written: with its shape wrong the
    semantic pass (:class:`_Builder`) cannot run, and a typo in a name is listed in the same pass all the same."""
    coupons = data.get("coupons")
    if not isinstance(coupons, dict):
        return []  # no coupons to name (``coupons: required`` says so)
    known = set(coupons)
    named: list[tuple[str, object]] = []
    for i, trigger in enumerate(_items(data.get("triggers"))):
        offer = trigger.get("offer")
        if offer is None:  # with an offer, the arms name the coupons
            named.append((f"triggers[{i}].coupon", trigger.get("coupon")))
        arms = offer.get("arms") if isinstance(offer, dict) else None
        named += [(f"triggers[{i}].offer.arms[{j}]", arm)
                  for j, arm in enumerate(arms if isinstance(arms, list) else [])]
    for i, experiment in enumerate(_items(data.get("experiments"))):
        named += [(f"experiments[{i}].variants[{j}].coupon", variant.get("coupon"))
                  for j, variant in enumerate(_items(experiment.get("variants"))) if variant.get("coupon") != OFFER]
    ledger = data.get("ledger")
    activities = ledger.get("activities") if isinstance(ledger, dict) else None
    named += [(f"ledger.activities.{name}", name) for name in (activities if isinstance(activities, dict) else ())]
    return [f"{path}: {_unknown_coupon(name)}" for path, name in named if isinstance(name, str) and name not in known]


def _items(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _path(loc: Iterable[int | str]) -> str:
    return dotted(loc) or "(top)"


# pydantic's words where they would name our classes or Python's types (``instance of LimitsModel``)
_CLEAR = {"extra_forbidden": "未知的键 / unknown key", "missing": _REQUIRED, "model_type": _MAPPING,
          "model_attributes_type": _MAPPING, "dict_type": _MAPPING, "list_type": "必须是列表 / must be a list",
          "string_type": "必须是文本（加上引号） / must be text (quote it)"}


def _file_loc(data: Any, err: Any) -> list[int | str]:
    """The error's location in the file: pydantic's loc without its union-member tags
    (``literal['all']``, ``ScopeModel``), told apart by walking the data itself, so a
    coupon that happens to be called ``int`` keeps its name in the path."""
    loc: list[int | str] = []
    parts = list(err["loc"])
    node = data
    for i, part in enumerate(parts):
        in_list = isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node)
        if in_list or (isinstance(node, dict) and part in node):
            loc.append(part)
            node = node[part]
        elif i == len(parts) - 1 and err["type"] == "missing":
            loc.append(part)
    return loc


def _is_stray_branch(err: Any) -> bool:
    """A scalar-literal branch of a union (``"all"``, ``"*"``) failing on a mapping or list:
    the writer meant the structured form, whose own errors say what is wrong."""
    tagged = any(isinstance(p, str) and p.startswith("literal[") for p in err["loc"])
    return tagged and isinstance(err["input"], (dict, list))


def _shape_errors(exc: ValidationError, data: Any) -> list[str]:
    errors = []
    for err in exc.errors(include_url=False):
        if _is_stray_branch(err):
            continue
        errors.append(f"{_path(_file_loc(data, err))}: {_shape_message(err)}")
    return sorted(set(errors), key=errors.index)


def _shape_message(err: Any) -> str:
    if err["type"] in _CLEAR:
        return _CLEAR[err["type"]]
    if err["type"].startswith("value_error"):  # our validators' own words, in both languages
        return str(err.get("ctx", {}).get("error", err["msg"]))
    return validation_words(err)


class _Builder:
    """The semantic pass: cross-references and per-kind rules, collecting every error."""

    def __init__(self, model: CampaignModel) -> None:
        self.m = model
        self.errors: list[str] = []
        # names met so far, each looked up once (a search of those before it made 8,000 triggers take 3.8 s)
        self._triggers: set[str] = set()
        self._covered: set[str] = set()
        self._experiments: set[str] = set()

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def build(self) -> Campaign:
        m = self.m
        if not re.fullmatch(r"[a-z0-9-]+", m.campaign):
            self.error("campaign", f"活动 id 只能包含 a-z、0-9 和 '-' / {m.campaign!r} must use only a-z, 0-9 and '-'")
        rooms = self._rooms()
        if m.presence_timeout <= 0:
            self.error("presence_timeout", _POSITIVE)
        coupons = {name: self._coupon(name, c) for name, c in m.coupons.items()}
        if not coupons:
            self.error("coupons", "至少要有一个券模板 / at least one coupon template is required")
        limits = self._limits(coupons)
        triggers = tuple(self._trigger(i, t) for i, t in enumerate(m.triggers))
        named = {t.name: t for t in triggers}
        experiments = tuple(self._experiment(i, e, named) for i, e in enumerate(m.experiments))
        delivery = self._delivery()
        ledger = self._ledger()
        starts_at, ends_at = self._schedule()
        if self.errors:
            raise CampaignError(self.errors)
        return Campaign(m.campaign, rooms, {k: v for k, v in coupons.items() if v is not None}, triggers,
                        m.presence_timeout, m.seed, m.attribution_window, limits, experiments, delivery, ledger,
                        starts_at, ends_at)

    def _schedule(self) -> tuple[int | None, int | None]:
        """``schedule.start`` / ``end`` as ms: triggers fire from the start and not from the end on."""
        bounds: list[int | None] = []
        for key in ("start", "end"):
            when: dt.datetime | None = getattr(self.m.schedule, key)
            bounds.append(None if when is None else self._ms(f"schedule.{key}", when))
        start, end = bounds
        if start is not None and end is not None and end <= start:
            self.error("schedule.end", "必须晚于 schedule.start / must be after schedule.start")
        return start, end

    def _ms(self, path: str, when: dt.datetime) -> int | None:
        """A time of the file in ms, if it carries its offset and names a day before the year 10000 in UTC."""
        if when.utcoffset() is None:
            self.error(path, f"必须带时区（如 +08:00） / must carry its UTC offset, e.g. {_EXAMPLE_TIME}")
            return None
        ms = round(when.timestamp() * 1000)
        if ms > LAST_MS:
            self.error(path, "必须早于公元 10000 年（UTC） / must be before the year 10000 in UTC")
            return None
        return ms

    def _ledger(self) -> Ledger | None:
        given = self.m.ledger
        if given is None:
            return None
        # here, not at the top: Douyin's client loads asyncio, which a campaign without a ledger never needs
        from livecoupon.integrations.douyin import BASE_URL as DOUYIN_URL
        from livecoupon.integrations.douyin import RATE as DOUYIN_RATE

        douyin = given.platform == "douyin"
        url = given.url if given.url is not None or not douyin else DOUYIN_URL
        if url is None:
            self.error("ledger.url", "必填：商家券系统接收新券的地址 / "
                       "required: where the merchant's coupon system takes new coupons")
        elif not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            self.error("ledger.url", f"必须是 http:// 或 https:// 地址 / {url!r} must be an http:// or https:// URL")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", given.secret_env):
            self.error("ledger.secret_env",
                       f"必须是环境变量名 / {given.secret_env!r} must be the name of an environment variable")
        if given.timeout <= 0:
            self.error("ledger.timeout", _POSITIVE)
        if given.rate is not None and not given.rate > 0:
            self.error("ledger.rate", "必须大于 0（每秒请求数） / must be > 0 requests per second")
        activities = given.activities or {}
        if douyin:
            for key in ("app_id", "client_key"):
                if not getattr(given, key):
                    self.error(f"ledger.{key}", "platform 为 douyin 时必填 / required with platform: douyin")
            for name in self.m.coupons:
                if not activities.get(name):
                    self.error(f"ledger.activities.{name}", "缺少这张券的抖音发券活动（activity_id） / "
                               "the Douyin send activity (activity_id) of this coupon is missing")
        for name in activities:
            if name not in self.m.coupons:
                self.error(f"ledger.activities.{name}", _unknown_coupon(name))
            elif not douyin:
                self.error("ledger.activities", "仅用于 platform: douyin / only with platform: douyin")
        rate = float(given.rate) if given.rate is not None else DOUYIN_RATE if douyin else None
        return Ledger(url or "", given.secret_env, given.timeout, given.platform, given.app_id, given.client_key,
                      tuple(sorted(activities.items())), rate)

    def _delivery(self) -> DeliveryPolicy:
        d = self.m.delivery
        if d.room_rate is not None and not d.room_rate > 0:
            self.error("delivery.room_rate", "必须大于 0（每秒弹窗数；不限写 null） / "
                       "must be > 0 popups per second (or null for no limit)")
        if d.max_mute <= 0:
            self.error("delivery.max_mute", _POSITIVE)
        return DeliveryPolicy(d.quiet_period, d.room_rate, d.max_mute)

    def _rooms(self) -> tuple[str, ...] | None:
        """None: every room (``"*"``, or ``["*"]`` as SPEC §3's comment beside a list reads; no platform's room is
        named so, POST /v1/events refuses it)."""
        if self.m.rooms == CAMPAIGN_WIDE or self.m.rooms == [CAMPAIGN_WIDE]:
            return None
        for i, room in enumerate(self.m.rooms):
            if not room:
                self.error(f"rooms[{i}]", "直播间 id 不能为空 / a room id must not be empty")
            elif room == CAMPAIGN_WIDE:
                self.error(f"rooms[{i}]", '"*" 表示全部直播间，应单独写 / '
                           '"*" is every room: write it alone (rooms: "*")')
            elif len(room) > MAX_NAME:
                self.error(f"rooms[{i}]", f"超过 {MAX_NAME} 个字符，事件里不会有这样的直播间 / "
                           f"longer than {MAX_NAME} characters: no event names such a room (SPEC §2)")
        if not self.m.rooms:
            self.error("rooms", '至少列出一个直播间，或写 "*" 表示全部 / list at least one room, or "*" for every room')
        return tuple(self.m.rooms)

    def _coupon(self, name: str, c: CouponModel) -> CouponTemplate | None:
        path = f"coupons.{name}"
        before = len(self.errors)
        kind = CouponKind(c.kind)
        allowed = {CouponKind.THRESHOLD: {"threshold", "amount"}, CouponKind.NO_THRESHOLD: {"amount"},
                   CouponKind.PERCENT: {"threshold", "percent", "max_discount"}}[kind]
        required = {CouponKind.THRESHOLD: {"threshold", "amount"}, CouponKind.NO_THRESHOLD: {"amount"},
                    CouponKind.PERCENT: {"percent"}}[kind]
        given = {key for key in ("threshold", "amount", "percent", "max_discount") if getattr(c, key) is not None}
        for key in sorted(required - given):
            self.error(f"{path}.{key}", f"kind 为 {kind.value} 时必填 / required for kind {kind.value}")
        for key in sorted(given - allowed):
            self.error(f"{path}.{key}", f"kind 为 {kind.value} 时不适用 / not used by kind {kind.value}")
        if not c.title.strip():
            self.error(f"{path}.title", _NOT_EMPTY)
        if c.amount is not None and c.amount <= 0:
            self.error(f"{path}.amount", _POSITIVE)
        if c.max_discount is not None and c.max_discount <= 0:
            self.error(f"{path}.max_discount", _POSITIVE)
        percent_tenths = self._percent(path, c.percent)
        if (c.valid_for is None) == (c.valid_until is None):
            self.error(path, "valid_for 与 valid_until 二选一 / give exactly one of valid_for or valid_until")
        if c.valid_for is not None and c.valid_for <= 0:
            self.error(f"{path}.valid_for", _POSITIVE)
        valid_until = self._ms(f"{path}.valid_until", c.valid_until) if c.valid_until is not None else None
        if c.stock is not None and c.stock < 0:
            self.error(f"{path}.stock", _NOT_NEGATIVE)
        if len(self.errors) > before:
            return None
        scope = Scope() if c.scope == "all" else Scope(*(frozenset(getattr(c.scope, k)) for k in (
            "products", "categories", "exclude_products", "exclude_categories")))
        terms = Terms(kind, c.threshold or 0, c.amount or 0, percent_tenths, c.max_discount, scope)
        return CouponTemplate(name, c.title, terms, c.valid_for, valid_until, c.stock)

    def _percent(self, path: str, percent: float | None) -> int:
        if percent is None:
            return 0
        tenths = round(percent * 10)
        if abs(percent * 10 - tenths) > 1e-9:
            self.error(f"{path}.percent", "最多一位小数 / at most one decimal allowed (12.5)")
        elif not 0 < tenths <= 1000:
            self.error(f"{path}.percent", "必须大于 0 且不超过 100 / must be in (0, 100]")
        return tenths

    def _limits(self, coupons: dict[str, CouponTemplate | None]) -> Limits:
        lim = self.m.limits
        if lim.per_user is not None and lim.per_user < 0:
            self.error("limits.per_user", _NOT_NEGATIVE)
        if lim.min_interval is not None and lim.min_interval < 0:
            self.error("limits.min_interval", _NOT_NEGATIVE)
        budgets = [lim.budget, lim.room_budget] + [t.budget for t in self.m.triggers]
        if any(b is not None for b in budgets):
            for name, template in coupons.items():
                if template is not None and template.terms.face_value is None:
                    self.error(f"coupons.{name}.max_discount", _needs_max_discount(lim.budget is not None))
        if lim.max_risk is not None and not 0 <= lim.max_risk <= 1:
            self.error("limits.max_risk", "必须在 0 到 1 之间 / must be in [0, 1]")
        if lim.room_budget is not None and lim.room_budget <= 0:
            self.error("limits.room_budget", _POSITIVE)
        return Limits(lim.per_user, lim.min_interval, lim.budget, lim.max_risk, lim.room_budget)

    def _trigger(self, i: int, t: TriggerModel) -> Trigger:
        path = f"triggers[{i}]"
        if not t.name:
            self.error(f"{path}.name", _NOT_EMPTY)
        if t.name in self._triggers:
            self.error(f"{path}.name", f"触发器名称重复 / duplicate trigger name {t.name!r}")
        self._triggers.add(t.name)
        offer = self._offer(path, t)
        if t.offer is None and t.coupon not in self.m.coupons:
            self.error(f"{path}.coupon", _unknown_coupon(t.coupon) if t.coupon is not None else _REQUIRED)
        given = {k for k in _TRIGGER_KEYS["online_reached"] | _TRIGGER_KEYS["host_says"] | {"after", "keywords"}
                 if getattr(t, k) is not None}
        for key in sorted(given - _TRIGGER_KEYS[t.when]):
            self.error(f"{path}.{key}", f"when 为 {t.when} 时不适用 / not used by when: {t.when}")
        audience = self._audience(path, t)
        when = When(t.when)
        self._trigger_values(path, t, audience)
        return Trigger(
            index=i, name=t.name, when=when, coupon=t.coupon, audience=audience, after_ms=t.after or 0,
            count=t.count or 0, source=t.source or "reported", winners=t.winners or 0,
            within_ms=t.within if t.within is not None else 60_000, top=t.top if t.top is not None else 1,
            phrases=tuple(t.phrases or ()), cooldown_ms=t.cooldown if t.cooldown is not None else 60_000,
            keywords=tuple(t.keywords or ()), per_device=t.per_device, offer=offer, budget=t.budget)

    def _offer(self, path: str, t: TriggerModel) -> Offer | None:
        if t.offer is None:
            return None
        if t.coupon is not None:
            self.error(f"{path}.offer", "coupon 与 offer 只能二选一 / give either coupon or offer, not both")
        arms = t.offer.arms
        if not arms:
            self.error(f"{path}.offer.arms", "至少列出一个候选（券名，或 null 表示不发） / "
                       "list at least one arm (coupon names, or null for nothing)")
        for j, arm in enumerate(arms):
            if arm is not None and arm not in self.m.coupons:
                self.error(f"{path}.offer.arms[{j}]", _unknown_coupon(arm))
            if arm in arms[:j]:
                self.error(f"{path}.offer.arms[{j}]",
                           f"重复列出 / {'null' if arm is None else repr(arm)} is listed twice")
        if not 0 < t.offer.explore <= 1:
            self.error(f"{path}.offer.explore", "必须大于 0 且不超过 1 / must be in (0, 1]")
        if t.offer.plan is not None and t.offer.plan <= 0:
            self.error(f"{path}.offer.plan", "必须是大于 0 的时长 / must be a duration > 0")
        return Offer(tuple(arms), t.offer.explore, t.offer.plan)

    def _audience(self, path: str, t: TriggerModel) -> Audience:
        if t.when not in _AUDIENCES:
            return Audience.USER
        audience = t.audience or "present"
        if audience not in _AUDIENCES[t.when]:
            choices = " or ".join(sorted(_AUDIENCES[t.when]))
            self.error(f"{path}.audience", f"when 为 {t.when} 时没有这种发放对象 / "
                       f"{audience!r} is not an audience of when: {t.when} (use {choices})")
            return Audience.PRESENT
        extras = {"winners": "lottery", "within": "commenters", "top": "top_gifters"}
        for key, needs in extras.items():
            if getattr(t, key) is not None and audience != needs and key in _TRIGGER_KEYS[t.when]:
                self.error(f"{path}.{key}", f"仅在 audience 为 {needs} 时使用 / only used with audience: {needs}")
        return Audience(audience)

    def _trigger_values(self, path: str, t: TriggerModel, audience: Audience) -> None:
        checks: list[tuple[bool, str, str]] = [
            (t.when == "dwell" and t.after is None, "after", "when 为 dwell 时必填 / required for when: dwell"),
            (t.after is not None and t.after <= 0, "after", _POSITIVE),
            (t.when == "online_reached" and t.count is None, "count",
             "when 为 online_reached 时必填 / required for when: online_reached"),
            (t.count is not None and t.count < 1, "count", _ONE_OR_MORE),
            (audience is Audience.LOTTERY and t.winners is None, "winners",
             "audience 为 lottery 时必填 / required with audience: lottery"),
            (t.winners is not None and t.winners < 1, "winners", _ONE_OR_MORE),
            (t.top is not None and t.top < 1, "top", _ONE_OR_MORE),
            (t.within is not None and t.within <= 0, "within", _POSITIVE),
            (t.cooldown is not None and t.cooldown < 0, "cooldown", _NOT_NEGATIVE),
            (t.when == "host_says" and not t.phrases, "phrases",
             "when 为 host_says 时必填（非空列表） / required for when: host_says (a non-empty list)"),
            (t.when == "comment" and not t.keywords, "keywords",
             "when 为 comment 时必填（非空列表） / required for when: comment (a non-empty list)"),
            (t.per_device is not None and t.per_device < 1, "per_device", _ONE_OR_MORE),
            (t.budget is not None and t.budget <= 0, "budget", _POSITIVE),
        ]
        for failed, key, message in checks:
            if failed:
                self.error(f"{path}.{key}", message)
        for key in ("phrases", "keywords"):
            for j, text in enumerate(getattr(t, key) or ()):
                if not _has_content(text):
                    self.error(f"{path}.{key}[{j}]", "去掉标点和空格后什么也不剩，无法匹配 / "
                               "has nothing left to match after removing punctuation and spaces")

    def _experiment(self, i: int, e: ExperimentModel, triggers: dict[str, Trigger]) -> Experiment:
        path = f"experiments[{i}]"
        trigger = triggers.get(e.trigger)
        if trigger is None:
            self.error(f"{path}.trigger", f"未知的触发器 / unknown trigger {e.trigger!r}")
        elif trigger.audience is Audience.LOTTERY:
            self.error(f"{path}.trigger", "抽奖触发器不能做实验 / "
                       f"trigger {e.trigger!r} draws a lottery; an experiment may not cover it")
        if e.trigger in self._covered:
            self.error(f"{path}.trigger", f"该触发器已有实验 / trigger {e.trigger!r} already has an experiment")
        self._covered.add(e.trigger)
        if not e.name:
            self.error(f"{path}.name", _NOT_EMPTY)
        elif e.name in self._experiments:
            self.error(f"{path}.name", f"实验名称重复 / duplicate experiment name {e.name!r}")
        self._experiments.add(e.name)
        if not e.variants:
            self.error(f"{path}.variants", "至少列出一个分组 / list at least one variant")
        for j, v in enumerate(e.variants):
            if not v.name:
                self.error(f"{path}.variants[{j}].name", _NOT_EMPTY)
            if v.coupon == OFFER:
                if trigger is not None and trigger.offer is None:
                    self.error(f"{path}.variants[{j}].coupon", "写 'offer' 需要该触发器设有 offer / "
                               f"'offer' needs trigger {e.trigger!r} to have an offer")
            elif v.coupon is not None and v.coupon not in self.m.coupons:
                self.error(f"{path}.variants[{j}].coupon", _unknown_coupon(v.coupon))
            if v.weight < 0 or v.weight != v.weight or v.weight == float("inf"):
                self.error(f"{path}.variants[{j}].weight", "必须是有限的非负数 / must be a finite number ≥ 0")
            if any(other.name == v.name for other in e.variants[:j]):
                self.error(f"{path}.variants[{j}].name", f"分组名称重复 / duplicate variant name {v.name!r}")
        total = sum(v.weight for v in e.variants)
        if e.variants and total <= 0:
            self.error(f"{path}.variants", "权重之和必须大于 0 / the weights must add up to more than 0")
        elif total == float("inf") and float("inf") not in (v.weight for v in e.variants):
            # each finite, their sum past a float's range: every user would land in the last variant
            self.error(f"{path}.variants", "权重之和超出数值范围 / the weights must add up to a finite number")
        variants = tuple(Variant(v.name, v.weight, v.coupon) for v in e.variants)
        return Experiment(e.name, e.trigger, e.salt if e.salt is not None else e.name, variants)


def _needs_max_discount(limits_budget_set: bool) -> str:
    if limits_budget_set:
        return ("设了 limits.budget 时，折扣券必须设 max_discount / "
                "a percent coupon needs max_discount when limits.budget is set")
    return ("设了预算（limits.room_budget 或触发器的 budget）时，折扣券必须设 max_discount / "
            "a percent coupon needs max_discount when a budget is set (limits.room_budget or a trigger's budget)")


def _has_content(text: str) -> bool:
    return bool(normalise(text))
