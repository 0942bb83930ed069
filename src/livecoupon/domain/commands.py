"""Operator actions as typed commands (SPEC §2, ``operator`` events).

An operator's action is recorded in the log in its place among the room events, so a
restart and a replay apply it at the same point as the live service did. Each command
has one JSON form, read by :func:`command_from_json` and written by :func:`command_json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from livecoupon.domain.campaign import Campaign  # at run time: compiled dataclasses resolve their fields

MAX_USERS = 100_000  # one manual issue or blocklist change
MAX_NAME = 128
MAX_CAMPAIGN = 1_048_576  # characters of a published campaign file
MAX_NOTE = 500


class CommandError(ValueError):
    """An operator event livecoupon cannot apply; ``field`` names what was wrong, ``message`` says it Chinese first,
    then English."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class PauseTrigger:
    """Pause (or, with ``paused=False``, resume) a trigger: while paused it fires nothing."""

    trigger: str
    paused: bool = True
    campaign: str | None = None  # the campaign whose trigger it is (None: a deployment of one campaign)


@dataclass(frozen=True, slots=True)
class IssueManually:
    """Issue ``template`` to ``users`` in ``room``; caps, stock and budget still hold."""

    template: str
    users: tuple[str, ...]
    room: str
    key: str  # the operator's idempotency key: the same key always yields the same coupons
    campaign: str | None = None  # whose template (None: a deployment of one campaign)


@dataclass(frozen=True, slots=True)
class IssueToPresent:
    """Issue ``template`` to every viewer present in ``room`` at the command's time."""

    template: str
    room: str
    key: str
    campaign: str | None = None  # whose template (None: a deployment of one campaign)


@dataclass(frozen=True, slots=True)
class ChangeBlocklist:
    """Block (or unblock) users and devices: a blocked viewer is decided nothing but ``blocked``."""

    users: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    blocked: bool = True


@dataclass(frozen=True, slots=True)
class ClockReached:
    """Written by the service, not an operator: its clock reached the event's ``ts`` and
    fired the timers due by then, so a replay of the log fires them too."""


@dataclass(frozen=True, slots=True)
class PublishCampaign:
    """A new version of the campaign, published by an operator (docs/campaign.md, "Publishing").

    ``limits`` hold at once; a room takes the new triggers, coupons and experiments at its next
    broadcast. The log keeps the whole file, so a replay of an export publishes it at the same point.
    """

    version: int  # 1 is the file the service started with; each publish adds one
    source: str  # the campaign file as published (YAML)
    campaign: Campaign = field(compare=False)  # ``source`` read
    note: str = ""  # the operator's words on the change


@dataclass(frozen=True, slots=True)
class StartCampaign:
    """A campaign joins a deployment whose log had begun without it (docs/campaign.md, "Several campaigns"):
    it applies the log from this entry on, as a new deployment applies it from its first."""

    campaign: str  # its id; the deployment's file of that id is the one it runs


Command = (PauseTrigger | IssueManually | IssueToPresent | ChangeBlocklist | ClockReached | PublishCampaign
           | StartCampaign)
ACTIONS = ("pause", "resume", "issue", "issue_present", "block", "unblock", "clock", "publish", "start")


def addressee(command: Command) -> str | None:
    """The campaign a command is about; None: every campaign of the deployment (or its only one)."""
    if isinstance(command, PublishCampaign):
        return command.campaign.campaign
    if isinstance(command, (PauseTrigger, IssueManually, IssueToPresent, StartCampaign)):
        return command.campaign
    return None


def _name(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise CommandError(key, "必填，非空字符串 / required: a non-empty string")
    if len(value) > MAX_NAME:
        raise CommandError(key, f"超过 {MAX_NAME} 个字符 / longer than {MAX_NAME} characters")
    return value


def _names(data: dict[str, Any], key: str, *, required: bool = True) -> tuple[str, ...]:
    value = data.get(key)
    if value is None and not required:
        return ()
    if not isinstance(value, list) or (required and not value):
        raise CommandError(key, "必填，非空的字符串列表 / required: a non-empty list of strings" if required
                           else "必须是字符串列表 / must be a list of strings")
    if len(value) > MAX_USERS:
        raise CommandError(key, f"一次最多 {MAX_USERS:,} 个 / at most {MAX_USERS:,} at once")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > MAX_NAME:
            raise CommandError(f"{key}[{i}]", f"必须是不超过 {MAX_NAME} 个字符的非空字符串 / "
                                              f"must be a non-empty string of at most {MAX_NAME} characters")
    return tuple(dict.fromkeys(value))


def _campaign_id(data: dict[str, Any]) -> str | None:
    return _name(data, "campaign") if data.get("campaign") is not None else None


def command_from_json(data: dict[str, Any]) -> Command:
    """The command of an ``operator`` event, or :class:`CommandError` naming the field."""
    action = data.get("action")
    if action in ("pause", "resume"):
        return PauseTrigger(_name(data, "trigger"), action == "pause", _campaign_id(data))
    if action == "issue":
        return IssueManually(_name(data, "template"), _names(data, "users"), _name(data, "room"), _name(data, "key"),
                             _campaign_id(data))
    if action == "issue_present":
        return IssueToPresent(_name(data, "template"), _name(data, "room"), _name(data, "key"), _campaign_id(data))
    if action in ("block", "unblock"):
        users, devices = _names(data, "users", required=False), _names(data, "devices", required=False)
        if not users and not devices:
            raise CommandError("users", "请至少填写一个用户或设备 / name at least one user or device")
        return ChangeBlocklist(users, devices, action == "block")
    if action == "clock":
        return ClockReached()
    if action == "publish":
        return _publish(data)
    if action == "start":
        return StartCampaign(_name(data, "campaign"))
    raise CommandError("action", f"未知的运营操作 / unknown operator action {action!r} (one of {', '.join(ACTIONS)})")


def _publish(data: dict[str, Any]) -> PublishCampaign:
    version, note = data.get("version"), data.get("note", "")
    if not isinstance(version, int) or isinstance(version, bool) or version < 2:
        raise CommandError("version", "必填，不小于 2 的整数（1 是服务启动时的文件） / "
                                      "required: an integer of at least 2 (1 is the file the service started with)")
    source = _source(data)
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise CommandError("note", f"必须是不超过 {MAX_NOTE} 个字符的字符串 / "
                                   f"must be a string of at most {MAX_NOTE} characters")
    return PublishCampaign(version, source, _read(source), note)


def _source(data: dict[str, Any]) -> str:
    source = data.get("campaign")
    if not isinstance(source, str) or not source or len(source) > MAX_CAMPAIGN:
        raise CommandError("campaign", f"必填：活动文件，不超过 {MAX_CAMPAIGN:,} 个字符 / "
                                       f"required: the campaign file, a string of at most {MAX_CAMPAIGN:,} characters")
    return source


def _read(source: str) -> Campaign:
    from livecoupon.campaign_file import CampaignError, parse_campaign  # the file format's reader, on demand

    try:
        campaign: Campaign = parse_campaign(source)  # (typed here: the compiled build does not read campaign_file)
    except CampaignError as exc:
        raise CommandError("campaign", "; ".join(exc.errors)) from None
    return campaign


def command_json(command: Command) -> dict[str, Any]:
    """The fields an ``operator`` event carries besides type, room and ts."""
    match command:
        case PauseTrigger(trigger, paused, campaign):
            return {"action": "pause" if paused else "resume", "trigger": trigger} | _of(campaign)
        case IssueManually(template, users, room, key, campaign):
            return {"action": "issue", "template": template, "users": list(users), "room": room, "key": key,
                    **_of(campaign)}
        case IssueToPresent(template, room, key, campaign):
            return {"action": "issue_present", "template": template, "room": room, "key": key, **_of(campaign)}
        case ChangeBlocklist(users, devices, blocked):
            return {"action": "block" if blocked else "unblock", "users": list(users), "devices": list(devices)}
        case ClockReached():
            return {"action": "clock"}
        case PublishCampaign(version, source, _, note):
            return {"action": "publish", "version": version, "campaign": source} | ({"note": note} if note else {})
        case StartCampaign(campaign):
            return {"action": "start", "campaign": campaign}
    raise TypeError(f"not a command: {command!r}")


def _of(campaign: str | None) -> dict[str, str]:
    return {} if campaign is None else {"campaign": campaign}
