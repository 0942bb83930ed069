"""The ASGI app over a real SQLite file, as the HTTP-level tests drive it (no server process)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from livecoupon.api.app import create_app
from livecoupon.campaign_file import load_campaign
from livecoupon.domain.campaign import Campaign
from livecoupon.engine.clock import ClockMode
from livecoupon.service_layer.service import LiveService
from livecoupon.store.sqlite import SqliteStore
from support.credentials import CREDENTIALS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"


@contextlib.contextmanager
def serving(db: Path, *, campaign: Campaign | list[Campaign] | None = None, clock: ClockMode = ClockMode.EVENT,
            wall: Callable[[], int] | None = None, headers: dict[str, str] | None = None,
            store: SqliteStore | None = None, peer: tuple[str, int] = ("testclient", 50000),
            **app: Any) -> Iterator[TestClient]:
    """A client of the app on ``db`` (the example campaign unless given; ``store``: the store opened on it, if it
    is); ``app`` goes to ``create_app`` (``throttle``, ``ledger``…); ``headers`` are sent with every request, from
    ``peer`` (the client's address and port)."""
    service = LiveService(campaign or load_campaign(EXAMPLE), store or SqliteStore(db), clock, wall=wall)
    with TestClient(create_app(service, credentials=CREDENTIALS, **app), headers=headers, client=peer) as client:
        yield client
    service.close()
