"""The service as the HTTP layer sees it: one process (LiveService), or a gateway (cluster/gateway.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from livecoupon.domain.campaign import Campaign
from livecoupon.domain.commands import Command
from livecoupon.domain.decisions import Decision, DecisionRecord
from livecoupon.domain.events import Event
from livecoupon.engine.clock import ServiceClock
from livecoupon.service_layer.checkout import Checkout
from livecoupon.service_layer.service import Submitted
from livecoupon.store.port import Store

T = TypeVar("T")


class Service(Protocol):
    clock: ServiceClock
    checkout: Checkout
    listeners: list[Callable[[list[Decision]], object]]
    records: dict[str, DecisionRecord]
    # done once every decision made before the service started is in ``records``: those, by campaign
    read_back: Future[dict[str, list[DecisionRecord]]]
    next_due: int | None  # the earliest timer this process fires, if any

    @property
    def campaign(self) -> Campaign:
        """The version in force, with the coupons and triggers only earlier versions had (for reports)."""

    def in_force_of(self, campaign: str | None) -> Campaign:
        """The version of one of the deployment's campaigns (None: its only one) deciding now (no history: what
        a backtest compares a candidate with)."""

    @property
    def campaign_names(self) -> list[str]:
        """The deployment's campaigns, in the order they decide."""

    def campaign_named(self, name: str) -> Campaign:
        """:attr:`campaign` of one of the deployment's campaigns."""

    def paused_of(self, campaign: str) -> frozenset[str]: ...

    def version_of(self, campaign: str) -> int: ...

    @property
    def store(self) -> Store: ...

    @property
    def events_applied(self) -> int: ...

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` where the service's store work runs (never on the event loop)."""

    def now(self) -> int: ...

    def rebuild(self, behind: bool = False) -> int:
        """Ready to decide; ``behind``: the decisions so far may still be reading back (see ``read_back``)."""

    def tick(self) -> list[Decision]: ...

    def submit(self, batch: Sequence[Any]) -> Submitted: ...

    def viewer_comment(self, room: str, user: str, text: str) -> Submitted:
        """A viewer's own chat message, as ``user`` at the service's time (their token's: ``POST
        /v1/rooms/{room}/comments``)."""

    def command(self, command: Command, room: str = ...) -> list[Decision]: ...

    def pause(self, trigger: str, paused: bool, campaign: str | None = None) -> None: ...

    def publish(self, source: str, base_version: int | None = None, note: str = "") -> dict[str, Any]: ...

    def versions(self, campaign: str | None = None) -> dict[str, Any]: ...

    def issue_manually(self, template: str, users: Sequence[str], room: str, key: str,
                       campaign: str | None = None) -> list[Decision]: ...

    def issue_to_present(self, template: str, room: str, key: str, campaign: str | None = None) -> list[Decision]: ...

    async def checkout_in_group(self, act: Callable[..., T], *args: Any) -> T:
        """A checkout call that changes state, in a transaction (committed together with concurrent calls,
        where it can be); an order it pays is applied and logged in the same transaction."""

    def merchant_reported(self, kind: str, coupon_id: str, order_id: str, amount: int) -> dict[str, Any]: ...

    def logged(self) -> Iterator[dict[str, Any]]: ...

    def explain(self, user: str) -> list[dict[str, Any]]: ...

    def metrics_inputs(self, campaign: str | None = None) -> tuple[list[DecisionRecord], list[Event]]: ...

    def campaign_versions(self, campaign: str) -> list[tuple[int | None, Campaign]]:
        """The campaign's file as started (at None), then each version published, with when (ms)."""

    def decisions_of(self, campaign: str | None = None) -> list[DecisionRecord]:
        """The decisions so far (``campaign``'s, where there are several), in decision order."""

    def offer_prices(self, campaign: str | None = None) -> dict[str, float | None]: ...

    def room_summary(self) -> dict[str, dict[str, Any]]: ...

    def close(self) -> None: ...
