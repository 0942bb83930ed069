"""Wire models: what the HTTP API accepts and answers. Money arrives in yuan and becomes fen.

Every size has a bound: a cart line's price and quantity, a cart's lines, a manual
issue's users, each string's length.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from livecoupon.domain.coupons import CouponKind, CouponState
from livecoupon.domain.events import CAMPAIGN_WIDE, MAX_IP, MAX_NAME, MAX_TEXT, RESERVED_ROOM, TYPES
from livecoupon.domain.money import yuan_to_fen
from livecoupon.domain.orders import OrderState
from livecoupon.domain.pricing import CartLine
from livecoupon.service_layer.publishing import DIFF_LINES

MAX_PRICE_FEN = 10_000_000 * 100  # ten million yuan a line item
MAX_QTY = 100_000
MAX_EVENTS = 10_000  # a POST /v1/events batch (SPEC §6)


def _yuan(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("必须是金额（元），不能是文本 / must be a number of yuan")
    if value > MAX_PRICE_FEN // 100:  # the line's own bound, before money's wider one (1e308 said a thousand million)
        raise ValueError(f"不能超过 {MAX_PRICE_FEN // 100:,} 元 / must be at most {MAX_PRICE_FEN // 100:,} yuan")
    return yuan_to_fen(value)


def _whole(value: Any) -> Any:
    """JSON does not tell 2 from 2.0: a whole float is that integer (as an event's ``count`` is)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Fen = Annotated[int, BeforeValidator(_yuan), Field(json_schema_extra={
    "type": "number", "minimum": 0, "maximum": MAX_PRICE_FEN // 100, "multipleOf": 0.01})]
Text = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]


def _a_room(name: str) -> str:
    if name == CAMPAIGN_WIDE:
        raise ValueError(RESERVED_ROOM)
    return name


RoomName = Annotated[Text, AfterValidator(_a_room)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)  # a JSON value of another type is a 422


class CartLineIn(_Body):
    product: Text
    category: str = ""
    price: Fen
    qty: Annotated[StrictInt, Field(gt=0, le=MAX_QTY), BeforeValidator(_whole)]

    def to_line(self) -> CartLine:
        return CartLine(self.product, self.category, self.price, self.qty)


Cart = Annotated[list[CartLineIn], Field(min_length=1, max_length=500)]


class QuoteIn(_Body):
    user: Text
    cart: Cart


class OrderIn(_Body):
    order_id: Text
    user: Text
    cart: Cart
    coupon_id: Annotated[str, Field(max_length=128)] | None = None
    idempotency_key: Text
    room: RoomName | None = None  # the live room it was placed from (else its coupon's room)


class OrderActionIn(_Body):
    idempotency_key: Text


CampaignName = Annotated[str | None, Field(min_length=1, max_length=128, description=(
    "the campaign meant, in a deployment of several (docs/campaign.md, \"Several campaigns\"); optional with one"))]


CampaignQuery = Annotated[str | None, Query(min_length=1, max_length=128, description=(
    "the campaign, in a deployment of several (the first by id if left out)"))]


class ManualIssueIn(_Body):
    template: Text
    users: Annotated[list[Text], Field(min_length=1, max_length=100_000)]
    room: Text
    idempotency_key: Text
    campaign: CampaignName = None


class BlocklistIn(_Body):
    """Users and devices to block (or unblock): at least one of either."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["users"], "properties": {"users": {"minItems": 1}}},
        {"required": ["devices"], "properties": {"devices": {"minItems": 1}}}]})
    users: Annotated[list[Text], Field(max_length=100_000)] = []
    devices: Annotated[list[Text], Field(max_length=100_000)] = []
    blocked: bool = True


class CommentIn(_Body):
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class TriggerSwitchIn(_Body):
    paused: bool
    campaign: CampaignName = None


class PresentIssueIn(_Body):
    template: Text
    idempotency_key: Text
    campaign: CampaignName = None


# -- the events a platform posts: documented here, checked one by one in domain/events.py ------
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Yuan = Annotated[float, Field(ge=0, multiple_of=0.01, description="yuan, at most 2 decimals")]


class Event(BaseModel):
    """One room event (SPEC §2). Unknown fields are ignored; ``user`` is required on viewer events."""

    model_config = ConfigDict(extra="allow")
    type: Annotated[str, Field(json_schema_extra={"enum": sorted(TYPES - {"operator"})})]
    room: Name
    ts: Annotated[float, Field(ge=0, description="event time: seconds since the Unix epoch, fractions allowed")]
    id: Name | None = Field(None, description="a repeated id in the same room is ignored")
    user: Name | None = None
    text: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    count: Annotated[int, Field(ge=0)] | None = None
    value: Yuan | None = None
    order_id: Name | None = None
    amount: Yuan | None = None
    coupon_id: Name | None = None
    duration: Annotated[float, Field(gt=0, description="seconds")] | None = None
    product: str | None = None
    device: Name | None = None
    ip: Annotated[str, Field(max_length=MAX_IP)] | None = None
    risk: Annotated[float, Field(ge=0, le=1)] | None = None
    profile: dict[str, str | float] | None = None


EVENTS_BODY: dict[str, Any] = {"required": True, "content": {"application/json": {"schema": {
    "title": "Events", "type": "array", "maxItems": MAX_EVENTS,
    "description": f"Up to {MAX_EVENTS:,} events. Each one that does not fit is rejected on its own "
                   "(in the answer's `rejected`, with its index and the field at fault); the others are applied.",
    "items": {"anyOf": [Event.model_json_schema(), {"description": "anything else: rejected on its own"}]}}}}}


# -- answers, for the OpenAPI document ---------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "a `Content-Encoding: gzip` body that does not inflate"},
    401: {"model": ErrorOut, "description": "no valid credential (missing, wrong or expired)"},
    403: {"model": ErrorOut, "description": "a valid credential, for another user or an endpoint it does not open"},
    404: {"model": ErrorOut, "description": "no such thing"},
    409: {"model": ErrorOut, "description": "refused by the rules (a coupon taken, expired, not usable…)"},
    413: {"model": ErrorOut, "description": "the body is over 16 MiB (inflated, for a gzip body)"},
    415: {"model": ErrorOut, "description": "a Content-Encoding other than gzip or identity"},
    422: {"model": ErrorOut, "description": "malformed: the field at fault is named"},
    429: {"model": ErrorOut, "description": "over a rate limit",
          "headers": {"Retry-After": {"description": "seconds to wait", "required": True,
                                      "schema": {"type": "integer", "minimum": 1}}}},
    503: {"model": ErrorOut, "description": "scaled out: the event bus did not take the events; retry",
          "headers": {"Retry-After": {"description": "seconds to wait", "required": True,
                                      "schema": {"type": "integer", "minimum": 1}}}},
}


def answer(model: type[BaseModel], status: int = 200) -> dict[int | str, dict[str, Any]]:
    """A successful answer's body, for a route's ``responses``."""
    return {status: {"model": model}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of ``statuses``."""
    return {status: ERRORS[status] for status in statuses}


_LEAN_BODIES: dict[str, type[BaseModel]] = {}


def lean_body(model: type[BaseModel]) -> dict[str, Any]:
    """The documented body of a hot route that reads it itself (``public.body_of``, skipping FastAPI's
    machinery): what FastAPI writes for a ``model`` parameter. ``with_lean_bodies`` adds the schema."""
    _LEAN_BODIES[model.__name__] = model
    return {"required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}


def with_lean_bodies(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the schemas of the lean routes' bodies, as FastAPI would have listed them."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, model in _LEAN_BODIES.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for inner, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(inner, definition)
        schemas.setdefault(name, schema)
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    return document


CALLER_ERRORS = errors(401, 403, 429)  # every endpoint behind a credential
BODY_ERRORS = errors(400, 413, 415, 422)  # every POST: the body's encoding, size and form
PARAM_ERRORS = errors(422)  # a path or query parameter FastAPI could not read


class HealthOut(BaseModel):
    ok: bool


class AdminHealthOut(HealthOut):
    campaign: str = Field(description="the deployment's first campaign (by id)")
    campaigns: list[str] = Field(description="every campaign the deployment runs, by id")
    events: int = Field(description="events and operator commands applied since start")
    connections: int
    popups_waiting: int
    clock: str = Field(description="wall or event")
    now: int = Field(description="the service's time, ms since the Unix epoch")


class DecisionSummary(BaseModel):
    coupon_id: str
    user: str
    issued: bool
    reason: str | None = Field(description="why nothing was issued (null when issued)")
    trigger: str
    room: str
    campaign: str


class Rejection(BaseModel):
    index: int
    error: str


class EventsOut(BaseModel):
    accepted: int
    rejected: list[Rejection]
    issued: int
    suppressed: int
    decisions: list[DecisionSummary] = Field(description="the first 1,000 decisions the batch caused")
    decisions_listed: int
    queued: bool | None = Field(None, description="202 only (scaled out, SPEC §7): the events are durably on the "
                                                  "bus while a worker fails over; their decisions follow")


class CouponOut(BaseModel):
    coupon_id: str
    state: CouponState
    template: str
    title: str
    kind: CouponKind
    threshold: float
    amount: float | None = Field(None, description="yuan off (threshold and no_threshold coupons)")
    percent: float | None = Field(None, description="percent off (percent coupons)")
    max_discount: float | None = Field(None, description="cap of a percent coupon, in yuan")
    scope: str | dict[str, list[str]] = Field(description='"all", or the products and categories it covers')
    issued_at: str
    expires_at: str
    room: str
    trigger: str
    order_id: str | None


class CouponsOut(BaseModel):
    coupons: list[CouponOut]


class HistoryEntryOut(BaseModel):
    at: str
    state: CouponState
    action: str
    order_id: str | None


class CouponDetailOut(CouponOut):
    history: list[HistoryEntryOut]
    confirmed: bool = Field(description="in the user's account: false while the merchant's system has not confirmed "
                                        "it (a campaign with a ledger): not listed, quoted or usable until then")


class QuoteLine(BaseModel):
    coupon_id: str
    title: str
    discount: float
    payable: float
    in_scope: float


class QuoteOut(BaseModel):
    best: QuoteLine | None
    usable: list[QuoteLine]
    subtotal: float


class OrderOut(BaseModel):
    order_id: str
    user: str
    state: OrderState
    coupon_id: str | None
    subtotal: float
    discount: float
    payable: float
    created_at: str
    reserved_until: str | None
    room: str | None = None
    coupon_returned: bool | None = Field(None, description="on a refund: whether the coupon went back to issued")


class IssueOut(BaseModel):
    issued: int
    suppressed: int
    decisions: list[DecisionSummary]


class StatsOut(BaseModel):
    """The consoles' counters (the same message their live feed carries each second)."""

    type: str
    campaign: str
    issued: int
    suppressed: dict[str, int]
    triggers: dict[str, dict[str, Any]]
    budget: dict[str, float | None]
    stock: dict[str, dict[str, int | None]]
    rooms: dict[str, dict[str, Any]]
    templates: list[str]
    issue_rate: list[dict[str, Any]]
    dead_letters: int


class MetricsTotals(BaseModel):
    decisions: int
    issued: int
    orders: int
    gmv: float = Field(description="the orders' value, in yuan")
    orders_with_coupon: int


class MetricsOut(BaseModel):
    """``metrics.json`` of SPEC §6, so far."""

    campaign: str
    triggers: dict[str, dict[str, Any]]
    experiments: dict[str, dict[str, Any]]
    offers: dict[str, dict[str, Any]] = Field(
        description="per offer trigger (千人千面): decisions, arms, phases, policy, spend, and price where known")
    totals: MetricsTotals


class VersionOut(BaseModel):
    version: int
    at: float | None = Field(description="when it was published, event-time seconds (null: the file at start)")
    note: str = Field(description="the operator's words on the change")


class VersionsOut(BaseModel):
    version: int = Field(description="the version in force")
    yaml: str | None = Field(description="its file (null: the service was started without one)")
    versions: list[VersionOut] = Field(description="every version, the file at start first")
    rooms: dict[str, int] = Field(description="the version each room on air runs")


class NamesChanged(BaseModel):
    """Triggers, coupons or experiments, by name (a list only where there is one)."""

    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []


class CampaignChanges(BaseModel):
    triggers: NamesChanged
    coupons: NamesChanged
    experiments: NamesChanged
    limits: list[str] = Field(description="the limits that changed, by their key in the file")
    settings: list[str] = Field(description="the other settings that changed, by their key in the file")


class PublishEffect(BaseModel):
    at_once: list[str] = Field(description="what holds from the publish on, in every room")
    next_broadcast: bool = Field(description="whether some of it waits for each room's next broadcast")
    rooms_waiting: list[str] = Field(description="the rooms on air, which keep the version they run until then")
    words_zh: str
    words_en: str


class PublishOut(BaseModel):
    published: bool = Field(description="false: the file changes nothing, and nothing was published")
    version: int = Field(description="the version in force after the call")
    changes: CampaignChanges
    diff: list[str] = Field(description="the line diff against the file in force "
                                           f"(cut at {DIFF_LINES:,} lines)")
    effect: PublishEffect | None = Field(None, description="when it takes effect (published only)")


class DecisionsOut(BaseModel):
    decisions: list[dict[str, Any]] = Field(
        description="in decision order, each a line of issued.jsonl or suppressed.jsonl plus issued, coupon_id "
                    "and broadcast (and campaign, where the deployment runs several)")


class ExplainEntry(BaseModel):
    ts: float = Field(description="event-time seconds")
    room: str
    trigger: str | None = Field(description="null for an event the room did not apply (off air)")
    outcome: Literal["issued", "suppressed", "no_decision"]
    reason: str | None = Field(None, description="the suppression reason, or why a firing made no decision")
    why: str = Field(description="in words, Chinese first: why_zh / why_en")
    why_zh: str
    why_en: str
    coupon: str | None = None
    coupon_id: str | None = None
    experiment: str | None = None
    variant: str | None = None
    arm: str | None = None
    propensity: float | None = None


class ExplainOut(BaseModel):
    user: str
    entries: list[ExplainEntry]


class TriggerSwitchOut(BaseModel):
    name: str
    paused: bool


class BlocklistOut(BaseModel):
    blocked: bool
    users: int
    devices: int


class HostTokenOut(BaseModel):
    room: str
    token: str


class DeadLettersOut(BaseModel):
    dead_letters: list[dict[str, Any]]


class RequeuedOut(BaseModel):
    requeued: int


class AgoraNoticeIn(BaseModel):
    """An Agora NCS notice, signed over the raw body (``Agora-Signature-V2``: hex HMAC/SHA256, or
    ``Agora-Signature``: hex HMAC/SHA1, with the NCS secret). Other fields are ignored."""

    model_config = ConfigDict(extra="allow")
    noticeId: str  # Agora's names
    productId: int
    eventType: int
    notifyMs: int | None = None
    payload: dict[str, Any] = Field(description="channelName, uid, ts, reason…")


class AgoraOut(BaseModel):
    ok: bool
    events: int = Field(description="how many livecoupon events the notice became (0 or 1)")


class SessionOut(BaseModel):
    role: str
    user: str | None = None
    room: str | None = None
