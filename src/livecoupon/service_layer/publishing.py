"""Publishing a new version of the running campaign (docs/campaign.md, "Publishing").

A candidate file is read as ``livecoupon check`` reads it, compared with the version in force
(what changed, and the files' line diff), and, if it differs, logged as an ``operator`` event
``publish`` in its place among the events. From that point its ``limits`` and ``schedule`` hold;
its triggers, coupons, experiments and offers reach each room at the room's next broadcast.
What a publish cannot change is named and refused: the campaign's name (coupon ids, first
visits and budgets are kept under it), the merchant ledger and the delivery pacing (both are
set up with the process: change them in the file and restart).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import yaml

from livecoupon.campaign_file import CampaignError, parse_campaign
from livecoupon.domain.campaign import Campaign, with_history
from livecoupon.domain.commands import PublishCampaign
from livecoupon.domain.events import seconds
from livecoupon.engine.engine import Published
from livecoupon.errors import Refused

FIXED = ("campaign", "ledger", "delivery")  # set up with the process, not by a publish
# The settings a publish may change, by their key in the file (what the answer names them by).
SETTINGS = {"rooms": "rooms", "presence_timeout_ms": "presence_timeout", "seed": "seed",
            "attribution_window_ms": "attribution_window", "starts_at": "schedule.start", "ends_at": "schedule.end"}
LIMITS = {"per_user": "per_user", "min_interval_ms": "min_interval", "budget": "budget", "max_risk": "max_risk",
          "room_budget": "room_budget"}
AT_ONCE = ("schedule.start", "schedule.end")  # besides every limit: they hold from the publish on, in every room
DIFF_LINES = 2_000  # a larger line diff is cut (the summary still names every change)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A file to publish, read, and what it changes against the version in force."""

    campaign: Campaign
    changes: dict[str, Any]
    diff: list[str]

    @property
    def unchanged(self) -> bool:
        return not any(self.changes.values())


def addressed(source: str, campaigns: Sequence[str]) -> str:
    """The campaign of the deployment a file to publish is a version of: the one its ``campaign`` names, or
    in a deployment of one, that one (a file naming another is then refused as a change of name)."""
    if len(campaigns) == 1:
        return campaigns[0]
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError:
        data = None
    name = data.get("campaign") if isinstance(data, dict) else None
    if not isinstance(name, str) or name not in campaigns:
        raise Refused("campaign_unknown", f"the file's campaign {name!r} is none of this deployment's "
                      f"({', '.join(campaigns)}): publish a version of one of them; a new campaign joins "
                      "with its file added to --config and a restart (新活动请加入配置后重启)", "yaml")
    return name


def prepare(source: str, base_version: int | None, note: str, version: int, current: Campaign,
            current_source: str | None, rooms_on_air: Iterable[str]) -> tuple[dict[str, Any], PublishCampaign | None]:
    """The answer to a publish of ``source`` over ``version`` (``current``), and the command that publishes
    it: None when it changes nothing."""
    read = candidate(source, current, current_source)
    check_base(base_version, version)
    answer: dict[str, Any] = {"published": False, "version": version, "changes": read.changes, "diff": read.diff}
    if read.unchanged:
        return answer, None
    answer |= {"published": True, "version": version + 1, "effect": effect(read.changes, rooms_on_air)}
    return answer, PublishCampaign(version + 1, source, read.campaign, note)


def source_in_force(base_source: str | None, published: Sequence[Published]) -> str | None:
    """The file of the version in force: the latest published, or the one the service started with."""
    return published[-1].source if published else base_source


def reported(base: Campaign, published: Sequence[Published]) -> Campaign:
    """The version in force with every earlier version's coupons and triggers (what reports read)."""
    return with_history([base, *(p.campaign for p in published)])


def history(version: int, source: str | None, published: Iterable[Published],
            rooms: Mapping[str, int]) -> dict[str, Any]:
    """The version in force and its file, every version, and the version each room on air runs."""
    return {"version": version, "yaml": source,
            "versions": [{"version": 1, "at": None, "note": "启动时的活动文件 / the file at start"},
                         *({"version": p.version, "at": seconds(p.at), "note": p.note} for p in published)],
            "rooms": dict(sorted(rooms.items()))}


def candidate(source: str, current: Campaign, current_source: str | None) -> Candidate:
    """``source`` read and compared with ``current``; :class:`Refused` naming every problem (the request is
    well-formed: the campaign's rules refuse the file, as ``livecoupon check`` would)."""
    try:
        campaign = parse_campaign(source)
    except CampaignError as exc:
        raise Refused("campaign_invalid", "; ".join(exc.errors), "yaml") from None
    for name in FIXED:
        if getattr(campaign, name) != getattr(current, name):
            raise Refused("campaign_fixed", f"{name}: cannot change while the service runs "
                            f"(kept with the process: change the file and restart)", "yaml")
    diff = [] if current_source is None else list(difflib.unified_diff(
        current_source.splitlines(), source.splitlines(), "running", "candidate", lineterm="", n=2))
    return Candidate(campaign, changes(current, campaign), diff[:DIFF_LINES])


def check_base(base_version: int | None, version: int) -> None:
    """The version an editor started from must still be the one in force (no lost update)."""
    if base_version is not None and base_version != version:
        raise Refused("version_conflict", f"version {version} is in force, not {base_version}: "
                      f"someone published since; reload and apply the change again", "base_version")


def changes(old: Campaign, new: Campaign) -> dict[str, Any]:
    """What differs, by part: triggers, coupons and experiments by name; the other settings by field."""
    return {
        "triggers": _by_name({t.name: replace(t, index=0) for t in old.triggers},
                             {t.name: replace(t, index=0) for t in new.triggers}),
        "coupons": _by_name(old.coupons, new.coupons),
        "experiments": _by_name({e.name: e for e in old.experiments}, {e.name: e for e in new.experiments}),
        "limits": [LIMITS[f.name] for f in fields(old.limits)
                   if getattr(old.limits, f.name) != getattr(new.limits, f.name)],
        "settings": [key for name, key in SETTINGS.items() if getattr(old, name) != getattr(new, name)],
    }


def _by_name(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[str]]:
    parts = {"added": [n for n in new if n not in old], "removed": [n for n in old if n not in new],
             "changed": [n for n in new if n in old and new[n] != old[n]]}
    return {key: names for key, names in parts.items() if names}


def effect(changed: dict[str, Any], rooms_on_air: Iterable[str]) -> dict[str, Any]:
    """When the publish takes effect: what holds at once, and which rooms wait for their next broadcast."""
    at_once = [f"limits.{key}" for key in changed["limits"]] + [s for s in changed["settings"] if s in AT_ONCE]
    later = any(changed[part] for part in ("triggers", "coupons", "experiments")) or \
        any(s not in AT_ONCE for s in changed["settings"])
    waiting = sorted(rooms_on_air) if later else []
    return {"at_once": at_once, "next_broadcast": later, "rooms_waiting": waiting,
            "words_zh": _words_zh(at_once, later, waiting), "words_en": _words_en(at_once, later, waiting)}


def _words_zh(at_once: list[str], later: bool, waiting: list[str]) -> str:
    parts = [f"{'、'.join(at_once)} 立即生效"] if at_once else []
    if later:
        parts.append(f"触发器与券的改动在直播间下一场开播时生效（{len(waiting)} 个直播间正在直播，本场沿用旧版本）"
                     if waiting else "触发器与券的改动在每个直播间下一场开播时生效（当前没有直播间在播）")
    return "；".join(parts) or "无改动"


def _words_en(at_once: list[str], later: bool, waiting: list[str]) -> str:
    parts = [f"{', '.join(at_once)} hold at once"] if at_once else []
    if later:
        parts.append(f"trigger and coupon changes reach each room at its next live_start (rooms on air now: "
                     f"{len(waiting)}; each keeps its version until its broadcast ends)" if waiting else
                     "trigger and coupon changes reach each room at its next live_start (none is on air now)")
    return "; ".join(parts) or "nothing changed"
