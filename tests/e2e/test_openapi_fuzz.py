"""Schemathesis over ``/openapi.json``: every answer of every endpoint is documented, and none is a 5xx.

The app is the real one (LiveService over a SQLite file, the wall clock fixed), called in process
with every check schemathesis has: per endpoint with the credential that opens it, with none, with a
wrong key and with a valid credential that does not open it; as workflows that chain orders through
their real ids; and along one whole session whose answers the fuzzer would seldom reach. Bounded (a
few examples per endpoint, derandomised), so CI sees the same cases on every run.

No check is left out: every test runs all of schemathesis's checks. ``ensure_resource_availability``
speaks only in the workflows (an order just created must be there to read); ``use_after_free`` runs
everywhere but has nothing to catch, since the API deletes nothing but a console session.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import AuthContext, Case, Response
from schemathesis.core.parameters import ParameterLocation
from schemathesis.python import asgi
from starlette.types import ASGIApp, Receive, Scope, Send

from livecoupon.api.agora import NCS_PATH
from livecoupon.api.app import create_app
from livecoupon.api.throttle import Throttle
from livecoupon.campaign_file import load_campaign
from livecoupon.engine.clock import ClockMode
from livecoupon.integrations.agora import sign
from livecoupon.service_layer.service import LiveService
from livecoupon.store.memory import MemoryStore
from livecoupon.store.sqlite import SqliteStore
from support.credentials import CREDENTIALS, OPERATOR, PLATFORM, viewer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"
T0 = 1_700_000_000
AGORA_SECRET = "ncs-secret-for-tests"
Headers = dict[str, str]


class AppUnderTest:
    """What schemathesis calls: the app the ``served`` fixture builds. Schemathesis reads the schema when
    this module is imported, before any fixture runs, so it holds this stand-in from then on."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "the served fixture builds the app"
        await self.app(scope, receive, send)


APP = AppUnderTest()
# The document /openapi.json serves (test_the_document_is_the_one_served checks they are one).
DOCUMENT = create_app(LiveService(load_campaign(EXAMPLE), MemoryStore()), credentials=CREDENTIALS,
                      agora_secret=AGORA_SECRET).openapi()
schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT))  # schemathesis adds the links it infers
schema.app = APP
# Examples per endpoint and caller, on top of the explicit and coverage cases schemathesis adds; derandomised.
FUZZ = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.function_scoped_fixture])
FEW = settings(FUZZ, max_examples=5)  # turned away before the body counts: fewer are enough


@pytest.fixture
def served(tmp_path: Path) -> Iterator[LiveService]:
    """A fresh real app for each test, so a run's cases do not depend on what ran before; rate limits
    far above what the fuzzer sends, so its answers are about its input (429 is tested in test_trust)."""
    service = LiveService(load_campaign(EXAMPLE), SqliteStore(tmp_path / "fuzz.db"), ClockMode.WALL,
                          wall=lambda: T0 * 1000)
    limits = Throttle(viewer="100000/second", ip="100000/second", socket="100000/second",
                      failed_auth="100000/minute")
    APP.app = create_app(service, credentials=CREDENTIALS, agora_secret=AGORA_SECRET, throttle=limits)
    yield service
    asgi.shutdown_lifespans()  # schemathesis started the app's lifespan on its first request
    APP.app = None
    service.close()


# -- who calls ---------------------------------------------------------------------------------
HOST = {"Authorization": f"Bearer {CREDENTIALS.host_token('room-1')}"}


def opener(method: str, path: str) -> Headers:
    """The credential that opens an endpoint (SPEC §6)."""
    if path.startswith("/v1/admin/") or (method, path) == ("POST", "/v1/session"):
        return OPERATOR
    if path.endswith("/comments"):
        return viewer("alice")
    return PLATFORM


def outsider(method: str, path: str) -> Headers | None:
    """A valid credential that does not open an endpoint, or None where every credential does."""
    if (method, path) == ("GET", "/v1/session"):
        return None
    if path.startswith("/v1/admin/") or path.endswith("/comments") or path == "/v1/session":
        return PLATFORM
    return HOST


class Caller:
    """Puts one kind of caller's credential on each case, and only that one; where it has none,
    the case keeps whatever credential schemathesis made up (always a wrong one)."""

    def credential(self, method: str, path: str) -> Headers | None:
        raise NotImplementedError

    def get(self, case: Case, ctx: AuthContext) -> Headers | None:
        if not ctx.operation.definition.raw.get("security"):
            return None
        return self.credential(ctx.operation.method.upper(), ctx.operation.path)

    def set(self, case: Case, data: Headers, ctx: AuthContext) -> None:
        case.headers = {**(case.headers or {}), **data}


@schema.auth(refresh_interval=None)
class Opener(Caller):
    def credential(self, method: str, path: str) -> Headers | None:
        return opener(method, path)


class Nobody(Caller):
    def credential(self, method: str, path: str) -> Headers | None:
        return None


class WrongKey(Caller):
    def credential(self, method: str, path: str) -> Headers | None:
        return {"X-API-Key": "not-a-key"}


class Outsider(Caller):
    def credential(self, method: str, path: str) -> Headers | None:
        return outsider(method, path)


KEYS = itertools.count()


def with_fresh_key(case: Case) -> None:
    """A client never reuses an idempotency key for another request: that is a 422 by design
    (test_a_reused_key_is_a_documented_422), which the fuzzer, trying its smallest strings first,
    would hit on every valid body. So each valid body gets a key of its own."""
    body = case.body
    negative = case.meta is not None and case.meta.is_negative_at(ParameterLocation.BODY)
    if not negative and isinstance(body, Mapping) and isinstance(body.get("idempotency_key"), str):
        case.body = {**body, "idempotency_key": f"fuzz-{next(KEYS)}"}


# -- each endpoint on its own ------------------------------------------------------------------
@schema.parametrize()
@FUZZ
def test_every_answer_to_the_right_caller_is_documented(case: Case, served: LiveService) -> None:
    with_fresh_key(case)
    case.call_and_validate()


@schema.auth(Nobody, refresh_interval=None)
@schema.parametrize()
@FEW
def test_every_answer_without_a_credential_is_documented(case: Case, served: LiveService) -> None:
    case.call_and_validate()


@schema.auth(WrongKey, refresh_interval=None)
@schema.parametrize()
@FEW
def test_every_answer_to_a_wrong_key_is_documented(case: Case, served: LiveService) -> None:
    case.call_and_validate()


@schema.auth(Outsider, refresh_interval=None)
@schema.parametrize()
@FEW
def test_every_answer_to_a_caller_it_does_not_open_is_documented(case: Case, served: LiveService) -> None:
    case.call_and_validate()


# -- chained through real ids ------------------------------------------------------------------
class Workflow(schema.as_state_machine()):  # type: ignore[misc]
    """Orders created, read, paid, cancelled and refunded through the ids the API answered
    (links schemathesis infers from the documented answers); the credential is the opener's."""

    def before_call(self, case: Case) -> None:
        with_fresh_key(case)


def test_workflows_through_real_ids_answer_as_documented(served: LiveService) -> None:
    Workflow.run(settings=settings(FUZZ, max_examples=10, stateful_step_count=6))


# -- one whole session -------------------------------------------------------------------------
CART = [{"product": "sku-1", "category": "dress", "price": 120, "qty": 1}]


def call(method: str, path: str, body: Any = None, *, as_: Headers | None = None,
         status: int = 200, **path_parameters: str) -> Any:
    """One request, checked by every check schemathesis has; its JSON answer."""
    operation = schema[path][method]
    case = operation.Case(path_parameters=path_parameters or None,
                          **({} if body is None else {"body": body, "media_type": "application/json"}))
    response: Response = case.call_and_validate(headers=as_ if as_ is not None else opener(method, path))
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def test_a_whole_session_answers_as_documented(served: LiveService) -> None:
    """Answers the fuzzer seldom reaches (a coupon's detail, a paid and refunded order, manual
    issues, a paused trigger), each checked against the document like any fuzzed one."""
    posted = call("POST", "/v1/events", [{"type": "live_start", "room": "room-1", "ts": T0},
                                         {"type": "join", "room": "room-1", "ts": T0, "user": "alice"},
                                         {"type": "join", "room": "room-1", "ts": T0, "user": "bob"},
                                         {"type": "join", "room": "room-1", "ts": T0 + 60}])
    assert posted["issued"] == 2 and posted["rejected"][0]["index"] == 3
    [coupon] = call("GET", "/v1/users/{user}/coupons", user="alice")["coupons"]
    assert call("GET", "/v1/coupons/{coupon_id}", coupon_id=coupon["coupon_id"])["history"]
    assert call("POST", "/v1/checkout/quote", {"user": "alice", "cart": CART})["best"] is not None
    order = {"order_id": "o1", "user": "alice", "cart": CART, "coupon_id": coupon["coupon_id"],
             "idempotency_key": "k1"}
    assert call("POST", "/v1/orders", order, status=201)["state"] == "created"
    taken = call("POST", "/v1/orders", order | {"order_id": "o2", "idempotency_key": "k2"}, status=409)
    assert taken["error"]["field"] == "coupon_id"
    assert call("POST", "/v1/orders/{order_id}/pay", {"idempotency_key": "p1"}, order_id="o1")["state"] == "paid"
    refunded = call("POST", "/v1/orders/{order_id}/refund", {"idempotency_key": "r1"}, order_id="o1")
    assert refunded["state"] == "refunded" and refunded["coupon_returned"] is True
    assert call("GET", "/v1/orders/{order_id}", order_id="o1")["state"] == "refunded"
    assert call("POST", "/v1/orders/{order_id}/cancel", {"idempotency_key": "c1"}, order_id="o9",
                status=404)["error"]["code"] == "unknown_order"
    call("POST", "/v1/rooms/{room}/comments", {"text": "扣1"}, room="room-1")
    issued = call("POST", "/v1/admin/issue", {"template": "bonus", "users": ["carol"], "room": "room-1",
                                             "idempotency_key": "m1"})
    assert issued["issued"] == 1
    assert call("POST", "/v1/admin/rooms/{room}/issue-present", {"template": "bonus", "idempotency_key": "m2"},
                room="room-1")["decisions"]
    assert call("POST", "/v1/admin/triggers/{name}", {"paused": True}, name="newcomer")["paused"] is True
    assert call("POST", "/v1/admin/blocklist", {"devices": ["farm-1"]})["devices"] == 1
    assert call("GET", "/v1/admin/decisions")["decisions"]
    assert call("GET", "/v1/admin/stats")["templates"] and call("GET", "/v1/admin/campaign")["triggers"]
    assert call("GET", "/v1/admin/metrics")["totals"]["orders"] == 0  # o1, paid, was refunded
    assert call("GET", "/v1/admin/health")["events"] > 0 and call("GET", "/health") == {"ok": True}
    assert call("GET", "/v1/admin/webhooks/dead-letters") == {"dead_letters": []}
    assert call("POST", "/v1/admin/webhooks/dead-letters/retry") == {"requeued": 0}
    token = call("POST", "/v1/admin/rooms/{room}/host-token", room="room-1")["token"]
    assert call("POST", "/v1/session", as_={"Authorization": f"Bearer {token}"})["room"] == "room-1"
    assert call("GET", "/v1/session", as_=viewer("alice"))["role"] == "viewer"
    assert call("DELETE", "/v1/session", status=204) is None


def test_a_signed_agora_notice_answers_as_documented(served: LiveService) -> None:
    """The fuzzer cannot sign a notice, so it only ever meets the 401; this is the 200 and the 422."""
    notices = [({"noticeId": "n1", "productId": 1, "eventType": 105, "payload": {"channelName": "room-1",
                                                                                 "uid": 7, "ts": T0}}, 200),
               ({"noticeId": "n2", "productId": 1, "eventType": 105, "payload": {"uid": 7}}, 422)]
    for notice, status in notices:
        case = schema[NCS_PATH]["POST"].Case(body=notice, media_type="application/json")
        raw = json.dumps(notice).encode()
        with asgi.get_client(APP) as client:
            response = client.post(NCS_PATH, data=raw, headers={"Content-Type": "application/json",
                                                                **sign(raw, AGORA_SECRET)})
        case.validate_response(response)
        assert response.status_code == status, response.text


def test_a_reused_key_is_a_documented_422(served: LiveService) -> None:
    """The same idempotency key for another request is malformed (the IETF Idempotency-Key draft's 422)."""
    call("POST", "/v1/orders", {"order_id": "o1", "user": "alice", "cart": CART, "idempotency_key": "k"},
         status=201)
    answer = call("POST", "/v1/orders", {"order_id": "o2", "user": "alice", "cart": CART, "idempotency_key": "k"},
                  status=422)
    assert answer["error"]["code"] == "idempotency_key_reused" and answer["error"]["field"] == "idempotency_key"


# -- what the fuzzing found, pinned -------------------------------------------------------------
MALFORMED: list[tuple[str, str, dict[str, str]]] = [
    ("POST", "/v1/checkout/quote", {}),
    ("POST", "/v1/orders", {}),
    ("POST", "/v1/orders/{order_id}/pay", {"order_id": "o1"}),
    ("POST", "/v1/rooms/{room}/comments", {"room": "room-1"}),
]


@pytest.mark.parametrize(("method", "path", "params"), MALFORMED, ids=[f"{m} {p}" for m, p, _ in MALFORMED])
def test_a_caller_an_endpoint_does_not_admit_is_turned_away_before_its_body_is_read(
        served: LiveService, method: str, path: str, params: dict[str, str]) -> None:
    """It was a 422 about the body's form, to anyone; SPEC §6 says 401 without a valid credential and 403
    with one that does not open the endpoint, whatever the body."""
    for who, status in (({}, 401), ({"X-API-Key": "not-a-key"}, 401), (outsider(method, path), 403)):
        assert call(method, path, {}, as_=who, status=status, **params)["error"]["code"] in ("unauthorized",
                                                                                            "forbidden")
    assert call(method, path, {}, status=422, **params)["error"]["code"] == "malformed"


def test_a_405_lists_every_method_of_its_path(served: LiveService) -> None:
    """It listed only the methods of the first route on the path (RFC 9110 §15.5.6: all of them)."""
    with asgi.get_client(APP) as client:
        assert client.options("/v1/session").headers["Allow"] == "GET, POST, DELETE"
        assert client.request("TRACE", "/health").headers["Allow"] == "GET"
        assert client.put("/v1/orders/o1/pay").headers["Allow"] == "POST"
        assert client.post("/web/viewer.html").headers["Allow"] == "GET, HEAD"


def test_a_whole_number_quantity_may_be_written_as_a_float(served: LiveService) -> None:
    """JSON Schema's integer admits 2.0, as an event's count does; it was a 422. 2.5 still is."""
    def quote(qty: float, status: int = 200) -> Any:
        return call("POST", "/v1/checkout/quote", {"user": "alice", "cart": [CART[0] | {"qty": qty}]}, status=status)

    assert quote(2.0) == quote(2) and quote(2)["subtotal"] == 240
    assert quote(2.5, status=422)["error"]["field"] == "cart[0].qty"


def test_a_room_name_over_128_characters_is_a_422_naming_the_room(served: LiveService) -> None:
    """It was a 422 naming ``text``, the one field the viewer got right."""
    answer = call("POST", "/v1/rooms/{room}/comments", {"text": "hi"}, status=422, room="r" * 129)
    assert answer["error"]["field"] == "room"


def test_the_document_is_the_one_served(served: LiveService) -> None:
    with asgi.get_client(APP) as client:
        assert client.get("/openapi.json").json() == DOCUMENT
