"""``POST /v1/integrations/agora/ncs``: Agora NCS channel-event callbacks in, livecoupon events out.

Agora counts a callback as delivered only on a 200 within 10 seconds and otherwise resends it, so this
endpoint does nothing slow: verify, map, hand the events to ``submit`` (applied in-process), answer.
A resent notice keeps its ``noticeId``, hence its event ``id``, and is ignored by the event-id rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from livecoupon.api.schemas import BODY_ERRORS, AgoraNoticeIn, AgoraOut, answer, errors
from livecoupon.errors import error_json
from livecoupon.integrations.agora import (
    SIGNATURE_HEADER,
    SIGNATURE_V2_HEADER,
    NoticeError,
    parse_notice,
    to_events,
    verify_signature,
)

NCS_PATH = "/v1/integrations/agora/ncs"

Submit = Callable[[list[dict[str, Any]]], Awaitable[object]]
# The route reads the raw body (the signature covers its bytes), so its OpenAPI form is spelled out here.
NOTICE_REQUEST: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": AgoraNoticeIn.model_json_schema()}}},
    "parameters": [{"name": name, "in": "header", "required": False, "schema": {"type": "string"},
                    "description": f"hex HMAC/{digest} of the raw body with the NCS secret"}
                   for name, digest in ((SIGNATURE_V2_HEADER, "SHA256"), (SIGNATURE_HEADER, "SHA1"))],
}


def agora_router(secret: str, submit: Submit) -> APIRouter:
    """A router receiving Agora NCS notices signed with ``secret`` and passing their events to ``submit``."""
    if not secret:
        raise ValueError("the Agora NCS secret is empty: set LIVECOUPON_AGORA_SECRET")
    router = APIRouter()

    @router.post(NCS_PATH, tags=["integrations"], response_model=None,
                 responses=answer(AgoraOut) | BODY_ERRORS | errors(401), openapi_extra=NOTICE_REQUEST)
    async def receive_agora_notice(request: Request) -> JSONResponse:
        body = await request.body()
        if not verify_signature(body, request.headers, secret):
            return _error(401, "bad_signature", "the notice is not signed with the configured Agora NCS secret",
                          SIGNATURE_V2_HEADER)
        try:
            events = to_events(parse_notice(body))
        except NoticeError as exc:
            return _error(422, exc.code, str(exc), exc.field)
        await submit(events)
        return JSONResponse({"ok": True, "events": len(events)})

    return router


def _error(status: int, code: str, message: str, field: str) -> JSONResponse:
    return JSONResponse(error_json(code, message, field), status_code=status)
