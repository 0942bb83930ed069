"""Agora NCS adapter: signatures and the notice-to-event mapping, on payloads shaped as Agora documents them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from livecoupon.domain.events import parse_event
from livecoupon.integrations.agora import (
    SIGNATURE_HEADER,
    SIGNATURE_V2_HEADER,
    NoticeError,
    NoticeNotJson,
    parse_notice,
    sign,
    to_events,
    verify_signature,
)

# The signature examples of Agora's docs: secret "secret" over these exact bytes.
DOC_BODY = (b'{"eventMs":1560408533119,"eventType":10,"noticeId":"4eb720f0-8da7-11e9-a43e-53f411c2761f",'
            b'"notifyMs":1560408533119,"payload":{"a":"1","b":2},"productId":1}')
DOC_SHA1 = "033c62f40f687675f17f0f41f91a40c71c0f134c"
DOC_SHA256 = "6d3320c60b11101395b7fc8f9068748808a0aa1bfa064438e39d1bc2c7d74d99"
DOC_BODY_NO_EVENT_MS = (b'{"eventType":10,"noticeId":"4eb720f0-8da7-11e9-a43e-53f411c2761f",'
                        b'"notifyMs":1560408533119,"payload":{"a":"1","b":2},"productId":1}')
DOC_NO_EVENT_MS_SHA1 = "5a3bb6a6d9fad2ea9ae3fb707a14c9d7f3136df1"
DOC_NO_EVENT_MS_SHA256 = "de96da5acf03b0021ac3b4fa2225e7ae6f3533a30d50bb02c08ea4fa748bda24"

# Payload examples from Agora's channel-event reference, with a real room instead of "test_webhook".
DOC_PAYLOADS: dict[int, dict[str, Any]] = {
    101: {"channelName": "room-1", "ts": 1560399999},
    102: {"channelName": "room-1", "ts": 1560399999, "lastUid": 12121212},
    103: {"channelName": "room-1", "uid": 12121212, "platform": 1, "clientSeq": 1625051030746, "ts": 1560396843},
    104: {"channelName": "room-1", "uid": 12121212, "platform": 1, "clientSeq": 1625051030789, "reason": 1,
          "ts": 1560396943, "duration": 600},
    105: {"channelName": "room-1", "uid": 12121212, "platform": 1, "clientSeq": 1625051035346, "ts": 1560396843},
    106: {"channelName": "room-1", "uid": 12121212, "platform": 1, "clientSeq": 1625051035390, "reason": 1,
          "ts": 1560396943, "duration": 600},
    107: {"channelName": "room-1", "uid": 12121212, "platform": 1, "clientSeq": 1625051035369, "ts": 1560396834},
    108: {"channelName": "room-1", "uid": 12121212, "platform": 1, "clientSeq": 1625051037369, "reason": 1,
          "ts": 1560496834, "duration": 600},
    111: {"channelName": "room-1", "uid": 12121212, "clientSeq": 1625051035469, "ts": 1560396834},
    112: {"channelName": "room-1", "uid": 12121212, "clientSeq": 16250510358369, "ts": 1560496834},
}


def notice(event_type: int, payload: dict[str, Any] | None = None, **envelope: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"noticeId": "2000001428:4330:107", "productId": 1, "eventType": event_type,
                            "notifyMs": 1611566412672, "sid": "C866467GVJJ54687",
                            "payload": DOC_PAYLOADS[event_type] if payload is None else payload}
    body.update(envelope)
    return body


# -- signatures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "sha1", "sha256"), [
    (DOC_BODY, DOC_SHA1, DOC_SHA256),
    (DOC_BODY_NO_EVENT_MS, DOC_NO_EVENT_MS_SHA1, DOC_NO_EVENT_MS_SHA256),
])
def test_documented_examples_verify(body: bytes, sha1: str, sha256: str) -> None:
    assert verify_signature(body, {SIGNATURE_V2_HEADER: sha256}, "secret")
    assert verify_signature(body, {SIGNATURE_HEADER: sha1}, "secret")
    assert verify_signature(body, {SIGNATURE_HEADER: sha1, SIGNATURE_V2_HEADER: sha256}, "secret")
    assert sign(body, "secret") == {SIGNATURE_HEADER: sha1, SIGNATURE_V2_HEADER: sha256}


def test_tampered_body_fails_both_versions() -> None:
    tampered = DOC_BODY.replace(b'"b":2', b'"b":3')
    assert not verify_signature(tampered, {SIGNATURE_V2_HEADER: DOC_SHA256}, "secret")
    assert not verify_signature(tampered, {SIGNATURE_HEADER: DOC_SHA1}, "secret")


def test_wrong_secret_fails() -> None:
    assert not verify_signature(DOC_BODY, {SIGNATURE_V2_HEADER: DOC_SHA256}, "other")
    assert not verify_signature(DOC_BODY, {SIGNATURE_HEADER: DOC_SHA1}, "other")


def test_a_wrong_v2_is_not_rescued_by_a_right_v1() -> None:
    headers = {SIGNATURE_HEADER: DOC_SHA1, SIGNATURE_V2_HEADER: "0" * 64}
    assert not verify_signature(DOC_BODY, headers, "secret")


def test_missing_headers_or_empty_secret_fail() -> None:
    assert not verify_signature(DOC_BODY, {}, "secret")
    assert not verify_signature(DOC_BODY, {SIGNATURE_V2_HEADER: ""}, "secret")
    empty_secret = sign(DOC_BODY, "")
    assert not verify_signature(DOC_BODY, empty_secret, "")


def test_header_names_and_hex_case_are_insensitive() -> None:
    assert verify_signature(DOC_BODY, {"agora-signature-v2": DOC_SHA256.upper()}, "secret")
    assert verify_signature(DOC_BODY, {"AGORA-SIGNATURE": f" {DOC_SHA1} "}, "secret")


def test_non_ascii_signature_is_rejected_not_raised() -> None:
    assert not verify_signature(DOC_BODY, {SIGNATURE_V2_HEADER: "签名"}, "secret")


# -- mapping ----------------------------------------------------------------------------------------------


def test_channel_create_starts_a_broadcast() -> None:
    assert to_events(notice(101)) == [
        {"type": "live_start", "room": "room-1", "ts": 1560399999, "id": "agora:2000001428:4330:107"},
    ]


def test_channel_destroy_ends_it() -> None:
    assert to_events(notice(102)) == [
        {"type": "live_end", "room": "room-1", "ts": 1560399999, "id": "agora:2000001428:4330:107"},
    ]


def test_audience_join_and_leave_are_viewer_presence() -> None:
    assert to_events(notice(105)) == [
        {"type": "join", "room": "room-1", "ts": 1560396843, "id": "agora:2000001428:4330:107", "user": "12121212"},
    ]
    assert to_events(notice(106)) == [
        {"type": "leave", "room": "room-1", "ts": 1560396943, "id": "agora:2000001428:4330:107", "user": "12121212"},
    ]


def test_broadcaster_join_is_not_a_viewer() -> None:
    assert to_events(notice(103)) == []


def test_broadcaster_leave_is_a_leave_for_whoever_was_a_viewer() -> None:
    [event] = to_events(notice(104))
    assert (event["type"], event["user"], event["ts"]) == ("leave", "12121212", 1560396943)


@pytest.mark.parametrize("event_type", [111, 112, 107, 108])
def test_role_switches_and_communication_profile_make_nothing(event_type: int) -> None:
    assert to_events(notice(event_type)) == []


@pytest.mark.parametrize("event_type", [104, 106])
@pytest.mark.parametrize("reason", [4, 5, 9, 10])
def test_leaves_of_a_client_still_connected_are_dropped(event_type: int, reason: int) -> None:
    payload = {**DOC_PAYLOADS[event_type], "reason": reason}
    assert to_events(notice(event_type, payload)) == []


@pytest.mark.parametrize("reason", [0, 1, 2, 3, 12, 99, 999])
def test_real_departures_are_leaves(reason: int) -> None:
    payload = {**DOC_PAYLOADS[106], "reason": reason}
    assert [e["type"] for e in to_events(notice(106, payload))] == ["leave"]


def test_leave_without_reason_is_a_leave() -> None:
    payload = {k: v for k, v in DOC_PAYLOADS[106].items() if k != "reason"}
    assert [e["type"] for e in to_events(notice(106, payload))] == ["leave"]


def test_string_uid_is_kept_as_is() -> None:
    payload = {**DOC_PAYLOADS[105], "uid": "u-7"}
    assert to_events(notice(105, payload))[0]["user"] == "u-7"


def test_id_comes_from_notice_id_and_survives_a_resend() -> None:
    first = to_events(notice(105, noticeId="2003239619:606959:105"))
    resent = to_events(notice(105, noticeId="2003239619:606959:105", notifyMs=1611566499999))
    assert first == resent
    assert first[0]["id"] == "agora:2003239619:606959:105"


def test_ts_falls_back_to_notify_ms() -> None:
    payload = {"channelName": "room-1", "uid": 5}
    assert to_events(notice(105, payload))[0]["ts"] == 1611566412.672


def test_fractional_ts_is_kept() -> None:
    payload = {**DOC_PAYLOADS[101], "ts": 1560399999.5}
    assert to_events(notice(101, payload))[0]["ts"] == 1560399999.5


@pytest.mark.parametrize("event_type", [1, 100, 109, 110, 113, 201])
def test_unknown_event_types_map_to_nothing(event_type: int) -> None:
    assert to_events({"noticeId": "n", "productId": 1, "eventType": event_type, "notifyMs": 1}) == []


def test_other_agora_products_map_to_nothing() -> None:
    # Conversational AI (productId 17) also numbers its events 101, 102, ...
    assert to_events(notice(101, productId=17)) == []


def test_console_health_check_channel_maps_to_nothing() -> None:
    for event_type in (101, 105, 106, 102):
        payload = {**DOC_PAYLOADS[event_type], "channelName": "test_webhook"}
        assert to_events(notice(event_type, payload)) == []


@pytest.mark.parametrize("event_type", sorted(DOC_PAYLOADS))
def test_every_event_produced_is_a_valid_livecoupon_event(event_type: int) -> None:
    for event in to_events(notice(event_type)):
        parsed = parse_event(event)
        assert (parsed.type, parsed.room, parsed.id) == (event["type"], "room-1", "agora:2000001428:4330:107")


# -- malformed notices ------------------------------------------------------------------------------------


def without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


@pytest.mark.parametrize(("bad", "field"), [
    (without(notice(105), "noticeId"), "noticeId"),
    (without(notice(105), "productId"), "productId"),
    (without(notice(105), "eventType"), "eventType"),
    (without(notice(105), "payload"), "payload"),
    (notice(105, without(DOC_PAYLOADS[105], "channelName")), "payload.channelName"),
    (notice(105, without(DOC_PAYLOADS[105], "uid")), "payload.uid"),
    (notice(104, without(DOC_PAYLOADS[104], "uid")), "payload.uid"),
    (without(notice(101, without(DOC_PAYLOADS[101], "ts")), "notifyMs"), "payload.ts"),
    (notice(105, noticeId=""), "noticeId"),
    (notice(105, noticeId=2000001428), "noticeId"),
    (notice(105, eventType="105"), "eventType"),
    (notice(105, eventType=105.0), "eventType"),
    (notice(105, productId=True), "productId"),
    ({**notice(105), "payload": [1, 2]}, "payload"),
    (notice(105, {**DOC_PAYLOADS[105], "channelName": ""}), "payload.channelName"),
    (notice(105, {**DOC_PAYLOADS[105], "uid": None}), "payload.uid"),
    (notice(105, {**DOC_PAYLOADS[105], "uid": 1.5}), "payload.uid"),
    (notice(105, {**DOC_PAYLOADS[105], "uid": True}), "payload.uid"),
    (notice(105, {**DOC_PAYLOADS[105], "uid": ""}), "payload.uid"),
    (notice(105, {**DOC_PAYLOADS[105], "ts": "1560396843"}), "payload.ts"),
    (notice(105, {**DOC_PAYLOADS[105], "ts": -1}), "payload.ts"),
    (notice(106, {**DOC_PAYLOADS[106], "reason": "1"}), "payload.reason"),
])
def test_malformed_notice_names_the_field(bad: dict[str, Any], field: str) -> None:
    with pytest.raises(NoticeError) as info:
        to_events(bad)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_parse_notice_reads_a_json_object() -> None:
    assert parse_notice(json.dumps(notice(105)).encode()) == notice(105)


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe",
                                  b'{"noticeId": "n", "notifyMs": NaN}'])
def test_parse_notice_rejects_what_is_not_a_json_object(body: bytes) -> None:
    with pytest.raises(NoticeNotJson) as info:
        parse_notice(body)
    assert info.value.field == "body"
    assert info.value.code == "invalid_json"
