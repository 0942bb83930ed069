"""Wire models: what the HTTP API accepts. Money arrives in yuan and becomes fen."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from livecoupon.domain.money import yuan_to_fen
from livecoupon.domain.pricing import CartLine


def _yuan(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number of yuan")
    return yuan_to_fen(value)


Fen = Annotated[int, BeforeValidator(_yuan)]
Text = Annotated[str, Field(min_length=1, max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CartLineIn(_Body):
    product: Text
    category: str = ""
    price: Fen
    qty: Annotated[StrictInt, Field(gt=0)]

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
    coupon_id: str | None = None
    idempotency_key: Text


class OrderActionIn(_Body):
    idempotency_key: Text


class ManualIssueIn(_Body):
    template: Text
    users: Annotated[list[Text], Field(min_length=1, max_length=100_000)]
    room: str = ""
    idempotency_key: Text


class TriggerSwitchIn(_Body):
    paused: bool


class PresentIssueIn(_Body):
    template: Text
    idempotency_key: Text
