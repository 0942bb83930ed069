"""``/openapi.json`` against the answers: the real app over a SQLite file, a whole broadcast applied, and
each operator read's 200 body checked against the schema the document gives it, closed: a field the
schema does not name is a mismatch too (a client generated from the document would not see it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from support.apps import EXAMPLE, serving
from support.credentials import OPERATOR, PLATFORM
from support.streams import broadcast_stream

SOURCE = EXAMPLE.read_text(encoding="utf-8")
EDITED = SOURCE.replace("threshold: 199, amount: 50", "threshold: 199, amount: 60")  # the bonus coupon


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app after a 15-minute broadcast of the example campaign (every trigger, the offer among them)."""
    with serving(tmp_path_factory.mktemp("openapi") / "answers.db") as c:
        answer = c.post("/v1/events", headers=PLATFORM, json=broadcast_stream())
        assert answer.status_code == 200, answer.text
        yield c


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def closed(schema: Any) -> Any:
    """``schema`` with every object that lists its properties closed to others (where it says nothing)."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: closed(value) for key, value in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def answer_schema(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The documented schema of the operation's 200 JSON answer."""
    operation = document["paths"][path][method.lower()]
    return dict(operation["responses"]["200"]["content"]["application/json"]["schema"])


def resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def check(document: dict[str, Any], method: str, path: str, body: Any) -> None:
    """``body`` fits the closed schema of the operation's 200 answer, which names its fields."""
    schema = answer_schema(document, method, path)
    assert resolved(document, schema).get("properties"), f"{method} {path}: the 200 answer is untyped: {schema}"
    validator = jsonschema_rs.validator_for(closed(schema | {"components": document["components"]}))
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{method} {path} answered what its schema does not describe:\n" + "\n".join(errors)


def read(client: TestClient, method: str, path: str, **kwargs: Any) -> Any:
    answer = client.request(method, path, headers=OPERATOR, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_admin_health_is_described(client: TestClient, document: dict[str, Any]) -> None:
    body = read(client, "GET", "/v1/admin/health")
    assert body["campaigns"] == ["double11-live"]
    check(document, "GET", "/v1/admin/health", body)


def test_metrics_with_the_offer_are_described(client: TestClient, document: dict[str, Any]) -> None:
    body = read(client, "GET", "/v1/admin/metrics")
    assert body["offers"]["dwell"]["decisions"] > 0  # the broadcast reached the offer trigger
    check(document, "GET", "/v1/admin/metrics", body)


def test_stats_and_decisions_are_described(client: TestClient, document: dict[str, Any]) -> None:
    for path in ("/v1/admin/stats", "/v1/admin/campaign", "/v1/admin/decisions"):
        check(document, "GET", path, read(client, "GET", path))


def test_publishing_and_versions_are_described(client: TestClient, document: dict[str, Any]) -> None:
    check(document, "GET", "/v1/admin/campaign/versions", read(client, "GET", "/v1/admin/campaign/versions"))
    published = read(client, "POST", "/v1/admin/campaign/publish", json={"yaml": EDITED, "note": "bonus 60"})
    assert (published["published"], published["changes"]["coupons"]) == (True, {"changed": ["bonus"]})
    check(document, "POST", "/v1/admin/campaign/publish", published)
    unchanged = read(client, "POST", "/v1/admin/campaign/publish", json={"yaml": EDITED})
    assert unchanged["published"] is False and "effect" not in unchanged
    check(document, "POST", "/v1/admin/campaign/publish", unchanged)
    versions = read(client, "GET", "/v1/admin/campaign/versions")
    assert [v["note"] for v in versions["versions"]][1:] == ["bonus 60"] and versions["yaml"] == EDITED
    check(document, "GET", "/v1/admin/campaign/versions", versions)


def test_the_websockets_are_named_in_the_document(document: dict[str, Any]) -> None:
    """OpenAPI has no operation for a WebSocket: the document's description names each, and where they are."""
    description = document["info"]["description"]
    for path in ("/v1/rooms/{room}/live", "/v1/console/live", "docs/api.md"):
        assert path in description
