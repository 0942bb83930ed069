"""What the merchant's coupon system reports back (campaigns with a ``ledger``, SPEC §6).

``POST /v1/integrations/ledger/events``, signed as livecoupon signs its own requests to the
merchant (Standard Webhooks, the same ``whsec_`` secret): ``coupon.redeemed`` (an order in the
merchant's shop used the coupon: logged and applied as an ``order`` event of the coupon's room,
so the ledger and analytics count it once) and ``coupon.refunded`` (the coupon goes back to the
user while still valid). The signature is the credential: no livecoupon key is needed.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from livecoupon.api.runtime import Runtime
from livecoupon.api.schemas import BODY_ERRORS, answer, errors
from livecoupon.domain.money import yuan_to_fen
from livecoupon.errors import Malformed, Unauthorized, dotted, validation_words

PATH = "/v1/integrations/ledger/events"


class MerchantReport(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)  # "12.5" is no amount: a 422
    type: Literal["coupon.redeemed", "coupon.refunded"]
    coupon_id: str = Field(min_length=1, max_length=128)
    order_id: str = Field(min_length=1, max_length=128)
    amount: float = Field(0, ge=0, le=10_000_000, description="yuan paid (coupon.redeemed)")


class MerchantReportOut(BaseModel):
    coupon_id: str
    state: str | None = None
    returned: bool | None = None


def merchant_router(secret: str) -> APIRouter:
    """The route, verifying each report against ``secret``."""
    router = APIRouter(tags=["integrations"])
    verifier = Webhook(secret)

    @router.post(PATH, response_model=None, responses=answer(MerchantReportOut) | BODY_ERRORS | errors(401, 404),
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                     "schema": MerchantReport.model_json_schema()}}}})
    async def merchant_report(request: Request) -> dict[str, Any]:
        """A redemption or refund reported by the merchant's coupon system, Standard Webhooks-signed."""
        body = await request.body()
        try:  # the signature only: the body is read below, whose errors are the sender's 422 (json_parse was a 500)
            verifier.verify(body, {k.lower(): v for k, v in request.headers.items()}, json_parse=False)
        except (WebhookVerificationError, ValueError):  # ValueError: a body not UTF-8 or a malformed signature header,
            # which the library raises as they are (they were 500s to anyone)
            raise Unauthorized("bad_signature", "webhook-signature does not verify with the ledger's secret",
                               "webhook-signature") from None
        try:
            report = MerchantReport.model_validate_json(body)  # refuses bytes that are not UTF-8, lone surrogates
            amount = yuan_to_fen(report.amount)
        except ValidationError as exc:
            [first, *_] = exc.errors(include_url=False)
            field = dotted(first["loc"]) or "body"
            raise Malformed("malformed", f"{field}: {validation_words(first)}", field) from None
        except ValueError as exc:  # the amount's money rules, in both languages
            raise Malformed("malformed", f"amount: {exc}", "amount") from None
        rt: Runtime = request.app.state.runtime
        service = rt.service
        return await service.call(service.merchant_reported, report.type, report.coupon_id, report.order_id, amount)

    return router
