"""Wire models: what the HTTP API accepts and answers. Money arrives in yuan and becomes fen.

Every size has a bound: a cart line's price and quantity, a cart's lines, a manual
issue's users, each string's length.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, StrictInt

from livecoupon.domain.money import yuan_to_fen
from livecoupon.domain.pricing import CartLine

MAX_PRICE_FEN = 10_000_000 * 100  # ten million yuan a line item
MAX_QTY = 100_000


def _yuan(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number of yuan")
    fen = yuan_to_fen(value)
    if fen > MAX_PRICE_FEN:
        raise ValueError(f"must be at most {MAX_PRICE_FEN // 100:,} yuan")
    return fen


Fen = Annotated[int, BeforeValidator(_yuan), Field(json_schema_extra={"type": "number", "minimum": 0,
                                                                       "maximum": MAX_PRICE_FEN // 100})]
Text = Annotated[str, Field(min_length=1, max_length=128)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CartLineIn(_Body):
    product: Text
    category: str = ""
    price: Fen
    qty: Annotated[StrictInt, Field(gt=0, le=MAX_QTY)]

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
    room: Text | None = None  # the live room it was placed from (else its coupon's room)


class OrderActionIn(_Body):
    idempotency_key: Text


class ManualIssueIn(_Body):
    template: Text
    users: Annotated[list[Text], Field(min_length=1, max_length=100_000)]
    room: Text
    idempotency_key: Text


class BlocklistIn(_Body):
    users: Annotated[list[Text], Field(max_length=100_000)] = []
    devices: Annotated[list[Text], Field(max_length=100_000)] = []
    blocked: bool = True


class CommentIn(_Body):
    text: Annotated[str, Field(min_length=1, max_length=2_000)]


class SessionOut(BaseModel):
    role: str
    user: str | None = None
    room: str | None = None


# -- answers, for the OpenAPI document ---------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no valid credential (missing, wrong or expired)"},
    403: {"model": ErrorOut, "description": "a valid credential, for another user or an endpoint it does not open"},
    404: {"model": ErrorOut, "description": "no such thing"},
    409: {"model": ErrorOut, "description": "refused by the rules (a coupon taken, expired, not usable…)"},
    413: {"model": ErrorOut, "description": "the body is over 16 MiB"},
    422: {"model": ErrorOut, "description": "malformed: the field at fault is named"},
    429: {"model": ErrorOut, "description": "over a rate limit; see Retry-After"},
}


class EventIn(BaseModel):
    """One room event (SPEC §2); unknown fields are ignored, and each bad event is rejected on its own."""

    model_config = ConfigDict(extra="allow")
    type: str
    room: str
    ts: float
    id: str | None = None
    user: str | None = None


class EventsIn(RootModel[list[EventIn]]):
    pass


class Rejection(BaseModel):
    index: int
    error: str


class EventsOut(BaseModel):
    accepted: int
    rejected: list[Rejection]
    issued: int
    suppressed: int
    decisions: list[dict[str, Any]]
    decisions_listed: int


class CouponsOut(BaseModel):
    coupons: list[dict[str, Any]]


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
    state: str
    coupon_id: str | None
    subtotal: float
    discount: float
    payable: float
    created_at: str
    reserved_until: str | None
    room: str | None = None


class TriggerSwitchIn(_Body):
    paused: bool


class PresentIssueIn(_Body):
    template: Text
    idempotency_key: Text
