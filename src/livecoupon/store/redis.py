"""Claims decided in Redis, recorded in PostgreSQL (SPEC §7: hot counters in Redis, never the only copy).

A deployment on PostgreSQL may keep its claims' counters — stock, budget and its shares, ``per_user``,
``per_device``, ``min_interval`` — in Redis (``--claims redis://…``): each ``issue()`` is decided by one
Lua script over them, and its decisions are written to PostgreSQL in the caller's transaction, as
without Redis. PostgreSQL stays the record; Redis holds nothing that cannot be counted again from it.

Fencing. Counters and decisions live in two servers, so a Redis that loses its data (a flush, a
restart) must never be refilled while decisions it counted are still on their way to PostgreSQL.
Claims are counted under the **epoch** PostgreSQL records for the campaign (``claims_epochs``; the script
refuses when Redis holds another epoch or none), and a claim's decisions are inserted by one statement that
takes the campaign's fence — a transaction-scoped *shared* advisory lock held until the claim's transaction
ends — and then writes only while that epoch is still PostgreSQL's (:data:`RECORD_CLAIMS_FUNCTION`). A
rebuild takes the fence *exclusively*, so it waits for every writer holding it to commit or roll back, counts
the campaign's decisions in PostgreSQL, loads them into Redis, and records a new epoch in both: a claim whose
script ran before the load and whose insert comes after it finds the epoch moved, writes nothing, and is made again.
A writer whose script is refused inside a transaction that holds the fence rolls it back
(:class:`ClaimsRebuilding`, a 503); the next claim of this store rebuilds first.

A transaction that rolls back after its script leaves Redis counting claims nobody recorded: fewer
coupons than the limits allow until the next rebuild, never more.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import psycopg
import redis

from livecoupon.domain.campaign import Limits
from livecoupon.domain.decisions import MANUAL, Decision, IssueRequest, Reason, nothing_reason
from livecoupon.errors import Unavailable
from livecoupon.store.port import CampaignTotals, collector_paused
from livecoupon.store.relational import DECISION_COLUMNS, ROOM_SHARE, TRIGGER_SHARE

if TYPE_CHECKING:
    from livecoupon.store.postgres import PostgresStore

T = TypeVar("T")

CAMPAIGN_SHARE = "campaign"  # the whole campaign's spend, beside the trigger:… and room:… shares
FACE = "CASE WHEN t.kind = 'percent' THEN COALESCE(t.max_discount, 0) ELSE t.amount END"  # a coupon's fen
_LOAD_CHUNK = 10_000  # hash fields per HSET while loading
_DECISION_TYPES = ("text", "text", "text", "bigint", "text", "text", "text", "bigint", "bigint", "text", "bigint",
                   "text", "text", "text", "text", "double precision")  # relational.DECISION_COLUMNS' types
_DECISION_FIELDS = tuple(column.strip().strip('"') for column in DECISION_COLUMNS.split(","))
# The decisions go as JSON text (msgspec encodes it in C: half the client's CPU of sixteen arrays psycopg dumps
# element by element, the same on the server's side), in two parts: the columns whose value is the same in every
# row of the call (a campaign, its room, trigger, template…: all of them for a claim alone) once, in one object,
# and each row an object of the others, without its nulls, under one-letter keys (a, b, … in DECISION_COLUMNS'
# order). A missing key reads as null, so each column is the row's value or else the call's: never wrong, because
# a column is in the call's object only when no row carries it. For 50 claims of one trigger, 4.4 KB against the
# 16 KB of every row's every column under its name: less to build and send (85 µs of the client's Python against
# 139) and to parse (the record of 50 rows, 1.38 ms of the backend's CPU against 1.50; docs/benchmarks.md).
_KEYS = tuple("abcdefghijklmnop")
_FIELDS = ", ".join(f"{key} {kind}" for key, kind in zip(_KEYS, _DECISION_TYPES, strict=True))
_ROW = ", ".join(f'COALESCE(r.{key}, s.{key}) AS "{name}"' for key, name in zip(_KEYS, _DECISION_FIELDS, strict=True))
# A claim's record: its decisions, written only while the campaign's epoch is the one the script counted under (a
# rebuild since then moved it: what the script counted is gone), while the deployment still claims through these
# counters (``claims_redis`` with their tag: not moved back to PostgreSQL), and only if none of its ids is recorded
# yet (the script counted them anew). A function, so that the fence and the insert are one statement: a claim alone
# is one message to PostgreSQL and back, and the statement's own transaction (each statement sent is a write of its
# own on loopback, and a wake-up of the server: four of them cost more CPU than the insert). The insert, a statement
# of a volatile function, takes its snapshot after the fence is held, as the statement after the fence used to. An
# id another writer records after that snapshot fails the insert (a unique violation), which writes nothing then: no
# ON CONFLICT, whose speculative insertion of every row cost the backend 3.05 ms of CPU for 50 rows against 2.55,
# and no exception block (a subtransaction per claim: a worker's round of more than 64 claims would overflow its
# cache of subtransactions, and every other backend's snapshots would look them up in pg_subtrans).
RECORD_CLAIMS_FUNCTION = f"""
CREATE OR REPLACE FUNCTION record_claims(p_rows json, p_same json, p_campaign text, p_epoch bigint, p_tag text,
                                         p_fence text, p_deployment_fence text)
RETURNS TABLE (fenced boolean, fresh boolean, kept boolean, inserted bigint) LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  PERFORM pg_advisory_xact_lock_shared(hashtextextended(p_fence, 0)),
          pg_advisory_xact_lock_shared(hashtextextended(p_deployment_fence, 0));
  RETURN QUERY
  WITH r AS MATERIALIZED (SELECT {_ROW} FROM json_to_recordset(p_rows) AS r({_FIELDS}),
                                 json_to_record(p_same) AS s({_FIELDS})),
  gate AS (SELECT EXISTS (SELECT FROM claims_epochs WHERE campaign = p_campaign AND epoch = p_epoch) AS fenced,
                  NOT EXISTS (SELECT FROM decisions d WHERE d.coupon_id IN (SELECT coupon_id FROM r)) AS fresh,
                  EXISTS (SELECT FROM claims_redis WHERE tag = p_tag) AS kept),
  made AS (INSERT INTO decisions ({DECISION_COLUMNS}) SELECT {DECISION_COLUMNS} FROM r
           WHERE (SELECT fenced AND fresh AND kept FROM gate) RETURNING 1)
  SELECT fenced, fresh, kept, (SELECT count(*) FROM made) FROM gate;
END $$;
"""
RECORD_CLAIMS = "SELECT * FROM record_claims(?::json, ?::json, ?, ?, ?, ?, ?)"
_encode = msgspec.json.Encoder().encode
_REBUILD_LOCK_TIMEOUT = "10s"  # a rebuild that waits longer gives up (ClaimsRebuilding): never wait forever

# KEYS: epoch, stock (template -> issued), spent (share -> fen), per_user (room\x1fbroadcast\x1fuser -> issued),
#       devices (device key -> issued), last (user -> ms of the last issue)
# ARGV: epoch, dry ('1': caps only, nothing moves), per_user, min_interval, budget, room_budget (-1: none),
#       then the requests as one JSON array (one argument: far less to pack and parse than 13 a request), each
#       an array of 13 strings: reason so far ('' none), device key ('' none), per_device, per_user field, user,
#       at, past validity ('1'), template, stock, face, the trigger's budget, its share, the room's share.
# The order of the checks is SPEC §4's, as domain/decisions.py decide_one makes them. Every share is counted,
# budgeted or not, so a budget given to a trigger or the rooms later starts from what they issued.
CLAIM_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local dry = ARGV[2] == '1'
local per_user, min_interval = tonumber(ARGV[3]), tonumber(ARGV[4])
local budget, room_budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local function count(key, name) return tonumber(redis.call('HGET', key, name) or '0') end
local reasons = {}
for _, r in ipairs(cjson.decode(ARGV[7])) do
  local reason, device, per_device = r[1], r[2], tonumber(r[3])
  local in_broadcast, user, at = r[4], r[5], r[6]
  if reason == '' and device ~= '' and per_device >= 0 and count(KEYS[5], device) >= per_device then
    reason = 'device_cap'
  end
  if reason == '' and per_user >= 0 and count(KEYS[4], in_broadcast) >= per_user then reason = 'per_user_cap' end
  if reason == '' and min_interval >= 0 then
    local last = redis.call('HGET', KEYS[6], user)
    if last and tonumber(at) - tonumber(last) < min_interval then reason = 'min_interval' end
  end
  if not dry then
    local template, stock, face = r[8], tonumber(r[9]), tonumber(r[10])
    local own, trigger_share, room_share = tonumber(r[11]), r[12], r[13]
    if reason == '' and r[7] == '1' then reason = 'template_expired' end
    if reason == '' and stock >= 0 and count(KEYS[2], template) >= stock then reason = 'out_of_stock' end
    if reason == '' and budget >= 0 and count(KEYS[3], 'campaign') + face > budget then reason = 'over_budget' end
    if reason == '' and own >= 0 and count(KEYS[3], trigger_share) + face > own then reason = 'over_budget' end
    if reason == '' and room_budget >= 0 and count(KEYS[3], room_share) + face > room_budget then
      reason = 'over_budget'
    end
    if reason == '' then  -- increments as strings: redis.call formats a Lua number with sprintf, a fifth of the CPU
      redis.call('HINCRBY', KEYS[4], in_broadcast, '1')
      if device ~= '' then redis.call('HINCRBY', KEYS[5], device, '1') end
      redis.call('HSET', KEYS[6], user, at)
      redis.call('HINCRBY', KEYS[2], template, '1')
      redis.call('HINCRBY', KEYS[3], 'campaign', r[10])
      redis.call('HINCRBY', KEYS[3], trigger_share, r[10])
      redis.call('HINCRBY', KEYS[3], room_share, r[10])
    end
  end
  reasons[#reasons + 1] = reason
end
return reasons
"""


class ClaimsRebuilding(Unavailable):
    """Redis lost the campaign's counters (or is away): this transaction is rolled back and the counters
    are counted again from PostgreSQL before the next claim; retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="claims_rebuilding")


class ClaimsMoved(ClaimsRebuilding):
    """The deployment claims in PostgreSQL now (``--claims postgresql``): nothing was recorded; retry (the store
    claims there from its next claim on)."""

    def __init__(self) -> None:
        super().__init__("此部署的领取已移回 PostgreSQL / this deployment claims in PostgreSQL now; retry")


class _Again(ClaimsRebuilding):
    """Nothing was recorded, and the claim is to be made again at once (its unit of work stays usable)."""

    def __init__(self) -> None:
        super().__init__("again")


@dataclass
class Recount:
    """A campaign's counters as PostgreSQL's decisions give them (what Redis is loaded with)."""

    stock: dict[str, int] = field(default_factory=dict)
    spent: dict[str, int] = field(default_factory=dict)  # CAMPAIGN_SHARE, trigger:…, room:… -> fen
    per_user: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)

    def hashes(self) -> dict[str, dict[str, int]]:
        """Every hash by name (to compare two recounts, or a recount and Redis)."""
        return {"stock": self.stock, "spent": self.spent, "per_user": self.per_user, "devices": self.devices,
                "last": self.last}


def deployment_fence(schema: str) -> str:
    """The advisory lock every claim through Redis holds shared until its transaction ends, and a move of the
    deployment's claims back to PostgreSQL takes exclusively."""
    return f"{schema}:claims-fence"


def _none(value: int | float | None) -> int | float:
    return -1 if value is None else value


def _broadcast_field(room: str, broadcast: int, user: str) -> str:
    return f"{room}\x1f{broadcast}\x1f{user}"


def _settled_before_counters(request: IssueRequest, limits: Limits, dry: bool) -> Reason | None:
    """The reasons decide_one gives before it reads a counter: no template (a holdout, or an offer of
    nothing; not a cap, so not with ``dry``), then the blocklist and risk (SPEC §4 step 2's first checks)."""
    if request.template is None and not dry:
        return nothing_reason(request)
    if request.blocked:
        return Reason.BLOCKED
    if limits.max_risk is not None and request.risk is not None and request.risk > limits.max_risk:
        return Reason.RISK
    return None


class RedisCounters:
    """One deployment's claim counters in Redis, a hash per counter and campaign, under one hash tag
    (``{deployment:campaign}``: a campaign's keys share a Redis Cluster slot, as its script needs)."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url, self.namespace = url, namespace
        self.client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._claim = self.client.register_script(CLAIM_SCRIPT)

    def keys(self, campaign: str) -> list[str]:
        tag = f"livecoupon:{{{self.namespace}:{campaign}}}"
        return [f"{tag}:{part}" for part in ("epoch", "stock", "spent", "per_user", "devices", "last")]

    def check_settings(self) -> None:
        """Refuse a Redis that may drop some keys and keep others (eviction), or come back from a restart
        with old counters under a current epoch (persistence): either would let claims over-issue."""
        policy = self.client.info("memory").get("maxmemory_policy", "noeviction")
        if policy != "noeviction":
            raise ValueError(f"--claims {self.url}: maxmemory-policy is {policy}; claims need noeviction")
        try:
            save = self.client.config_get("save").get("save", "")
            appendonly = self.client.config_get("appendonly").get("appendonly", "no")
        except redis.ResponseError:  # CONFIG is disabled (a managed Redis): docs/scaling.md asks for no persistence
            return
        if save or appendonly != "no":
            raise ValueError(f"--claims {self.url}: persistence is on (save {save!r}, appendonly {appendonly}); "
                             "claims need a Redis that restarts empty (save \"\", appendonly no)")

    def claim(self, campaign: str, epoch: int, limits: Limits, requests: Sequence[IssueRequest],
              dry: bool = False) -> list[Reason | None] | None:
        """Each request's reason (None: issued, or with ``dry`` passing the caps), counters moved for the
        issued; None when Redis holds no counters of ``epoch``."""
        args: list[Any] = [epoch, "1" if dry else "0", _none(limits.per_user), _none(limits.min_interval_ms),
                           _none(limits.budget), _none(limits.room_budget),
                           _encode([_script_args(r, limits, dry) for r in requests])]
        answer = self._claim(keys=self.keys(campaign), args=args)
        if answer is None:
            return None
        return [Reason(reason.decode()) if reason else None for reason in answer]

    def epoch(self, campaign: str) -> int | None:
        value = self.client.get(self.keys(campaign)[0])
        return int(value) if value is not None else None

    def spent(self, campaign: str, share: str, epoch: int) -> int | None:
        """A share's fen from Redis, or None when Redis holds no counters of ``epoch``."""
        keys = self.keys(campaign)
        pipe = self.client.pipeline(transaction=False)
        pipe.get(keys[0])
        pipe.hget(keys[2], share)
        held, value = pipe.execute()
        if held is None or int(held) != epoch:
            return None
        return int(value or 0)

    def load(self, campaign: str, epoch: int, recount: Recount) -> None:
        """Replace the campaign's counters with ``recount``, the epoch last, in one MULTI/EXEC."""
        epoch_key, *hashes = self.keys(campaign)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(epoch_key, *hashes)
        for key, values in zip(hashes, recount.hashes().values(), strict=True):
            for part in _slices(values):
                pipe.hset(key, items=part)
        pipe.set(epoch_key, epoch)
        pipe.execute()

    def drop(self) -> None:
        """Remove every campaign's counters of this deployment (tearing it down)."""
        for key in self.client.scan_iter(match=f"livecoupon:{{{self.namespace}:*", count=1_000):
            self.client.unlink(key)

    def close(self) -> None:
        self.client.close()


def _script_args(request: IssueRequest, limits: Limits, dry: bool) -> list[str]:
    """A request's 13 fields for the claim script (see :data:`CLAIM_SCRIPT`), as strings: Lua's numbers are
    doubles, and Redis would write a large one back as ``1e+15``."""
    r, template = request, request.template
    settled = _settled_before_counters(r, limits, dry)
    return [settled.value if settled is not None else "", r.device_key or "", str(_none(r.per_device)),
            _broadcast_field(r.room, r.broadcast, r.user), r.user, str(r.at),
            "1" if template is not None and template.is_past_validity(r.at) else "0",
            template.name if template is not None else "",
            str(_none(template.stock if template is not None else None)),
            str((template.terms.face_value or 0) if template is not None else 0), str(_none(r.trigger_budget)),
            TRIGGER_SHARE + r.trigger, ROOM_SHARE + r.room]


def record_payload(rows: Sequence[tuple[Any, ...]]) -> tuple[str, str]:
    """``rows`` (in DECISION_COLUMNS' order) as :data:`RECORD_CLAIMS` takes them: each row's own values as JSON
    objects without their nulls, and the values every row shares, once."""
    columns = list(zip(*rows, strict=True))
    varying = [j for j, column in enumerate(columns) if column.count(column[0]) < len(column)]
    same = {_KEYS[j]: column[0] for j, column in enumerate(columns) if column[0] is not None and j not in varying}
    own = [{_KEYS[j]: row[j] for j in varying if row[j] is not None} for row in rows]
    return _encode(own).decode(), _encode(same).decode()


def _slices(values: dict[str, int]) -> Iterator[list[str | int]]:
    """``values`` as HSET's flat name, value, name, value… lists, a few thousand fields each."""
    items = list(values.items())
    for start in range(0, len(items), _LOAD_CHUNK):
        yield [part for item in items[start:start + _LOAD_CHUNK] for part in item]


class RedisClaims:
    """The claims ledger of a :class:`PostgresStore` whose counters are in Redis: the script decides, the
    store's connection records (in the caller's transaction), an exclusive fence rebuilds."""

    def __init__(self, store: PostgresStore, counters: RedisCounters, tag: str) -> None:
        self.store, self.counters, self.tag = store, counters, tag  # tag: the deployment's period in Redis
        self._epochs: dict[str, int] = {}  # campaigns this store has claimed, and the epoch it last found current
        self._miscounted: set[str] = set()  # campaigns whose counters may hold claims nobody recorded
        self._changing = threading.Lock()
        self._rebuilding = threading.Lock()
        self._fenced = threading.local()  # per thread: (the unit of work holding fences, their campaigns)

    def _fence_key(self, campaign: str) -> str:
        """The campaign's fence: every claim holds it shared until its transaction ends (with the deployment's,
        which a move back to PostgreSQL takes exclusively); a rebuild takes it exclusively."""
        return f"{self.store.schema}:claims-fence:{campaign}"

    # -- claiming ----------------------------------------------------------------------
    def issue(self, requests: Sequence[IssueRequest], limits: Limits) -> list[Decision]:
        """Decide and record ``requests``, in order, atomically and idempotently (the ClaimsLedger port)."""
        if not requests:
            return []
        known: dict[str, Decision] = {}  # ids found recorded already, kept across attempts
        with collector_paused(len(requests)):
            return self._retrying(lambda: self._issue(requests, limits, known))

    def passing_caps(self, requests: Sequence[IssueRequest], limits: Limits) -> list[IssueRequest]:
        if not requests:
            return []
        return self._retrying(lambda: self._passing_caps(requests, limits))

    def _retrying(self, claim: Callable[[], T]) -> T:
        """``claim`` in a unit of work, again after :class:`_Again`; on a transaction of its own, once more
        after a refused script too (the next attempt rebuilds first). Inside the caller's transaction, a
        refusal is the caller's: that transaction is lost with it."""
        for _ in range(4):
            try:
                with self.store.claiming():
                    return claim()
            except _Again:
                continue
            except ClaimsMoved:
                raise
            except ClaimsRebuilding:
                if self.store.in_transaction():
                    raise
        raise ClaimsRebuilding("Redis 计数重建中 / the claims' counters keep being rebuilt; retry")

    def _issue(self, requests: Sequence[IssueRequest], limits: Limits, known: dict[str, Decision]) -> list[Decision]:
        """The script decides, then one statement records the decisions where the campaign's epoch is still the
        one the script counted under (the fence) and none of the ids is recorded yet: a claim is one round trip
        to Redis and one to PostgreSQL (that statement its own transaction, when the claim is)."""
        campaign = requests[0].campaign
        assert all(r.campaign == campaign for r in requests), "one campaign per batch"
        repeatable = [r for r in requests if r.trigger == MANUAL and r.coupon_id not in known]
        if repeatable:  # an operator's key repeated: read first, or the script would count its coupons again
            known |= self._known(repeatable)
        first: dict[str, IssueRequest] = {}
        for r in requests:  # a coupon id asked for twice is decided once, as first asked
            if r.coupon_id not in known:
                first.setdefault(r.coupon_id, r)
        fresh = list(first.values())
        made: dict[str, Decision] = {}
        if fresh:
            epoch, reasons = self._claim(campaign, limits, fresh)
            for r, reason in zip(fresh, reasons, strict=True):
                expires_at = r.template.expires_at(r.at) if reason is None and r.template is not None else None
                made[r.coupon_id] = Decision(r, reason, expires_at)
            self._record(campaign, epoch, list(made.values()), known)
        return [known.get(r.coupon_id) or made[r.coupon_id] for r in requests]

    def _passing_caps(self, requests: Sequence[IssueRequest], limits: Limits) -> list[IssueRequest]:
        _, reasons = self._claim(requests[0].campaign, limits, requests, dry=True)
        return [r for r, reason in zip(requests, reasons, strict=True) if reason is None]

    def _claim(self, campaign: str, limits: Limits, requests: Sequence[IssueRequest],
               dry: bool = False) -> tuple[int, list[Reason | None]]:
        """The script's reasons, and the epoch it counted under. A script refused because this store's epoch is
        stale (another process rebuilt) runs again under the current one."""
        for _ in range(2):
            epoch = self._make_current(campaign)
            try:
                reasons = self.counters.claim(campaign, epoch, limits, requests, dry)
            except redis.RedisError as exc:  # the script may have run before the answer was lost
                self._forget(campaign, miscounted=not dry)
                raise ClaimsRebuilding(f"Redis 不可用 / Redis is unavailable for claims: {exc}") from exc
            if reasons is not None:
                return epoch, reasons
            self._forget(campaign)
        raise ClaimsRebuilding("Redis 计数需重建 / the claims' counters in Redis are gone; rebuilding, retry")

    def _record(self, campaign: str, epoch: int, made: Sequence[Decision], known: dict[str, Decision]) -> None:
        """Write the decisions in the caller's transaction, or in a statement that is its own: one statement
        that takes the fence (shared), then inserts them only under ``epoch`` and only if none is recorded
        yet. Otherwise nothing is written and the claim is made again (:class:`_Again`): under the new epoch, or
        without the ids found recorded (the script counted them: counted again first)."""
        rows, same = record_payload(self.store._decision_rows(made))
        self._note_fence(campaign)
        try:
            [[(fenced, fresh, kept, inserted)]] = self.store._fetch_committing([(RECORD_CLAIMS, (
                rows, same, campaign, epoch, self.tag, self._fence_key(campaign),
                deployment_fence(self.store.schema)))])
        except psycopg.errors.UniqueViolation:  # another writer recorded one of the ids since the gate read them
            fenced, fresh, kept, inserted = True, False, True, 0
            if self.store.in_failed_transaction():  # the caller's, or this claim's BEGIN … COMMIT: it reads nothing
                self._forget(campaign, miscounted=any(d.issued for d in made))  # more; retried (not in the caller's)
                raise ClaimsRebuilding("同一券已由另一进程记录 / another writer recorded this coupon; retry") from None
        if not kept:
            self.store.claims_moved()
            raise ClaimsMoved
        if not fenced:  # a rebuild since the script ran: what it counted is gone with the old counters
            self._forget(campaign)
            raise _Again
        if not fresh:  # recorded before, or by another writer since the gate read: theirs stand
            known |= self._known([d.request for d in made])
            if any(d.issued for d in made):  # the script counted coupons nobody records: counted again first
                self._forget(campaign, miscounted=True)
            raise _Again
        assert inserted == len(made), "the record writes every decision or none"

    def _known(self, requests: Sequence[IssueRequest]) -> dict[str, Decision]:
        """The decisions recorded under the requests' coupon ids."""
        by_id = {r.coupon_id: r for r in requests}
        return {cid: Decision(by_id[cid], record.reason, record.expires_at)
                for cid, record in self.store.recorded(list(by_id)).items()}

    def _note_fence(self, campaign: str) -> None:
        """Remember that this thread's unit of work holds the campaign's fence until it ends."""
        serial, campaigns = getattr(self._fenced, "held", (0, set()))
        if serial != self.store.transaction():
            serial, campaigns = self.store.transaction(), set()
        self._fenced.held = (serial, campaigns | {campaign})

    # -- rebuilding --------------------------------------------------------------------
    def _forget(self, campaign: str, miscounted: bool = False) -> None:
        """The campaign's counters in Redis are gone, or (``miscounted``) count claims nobody recorded:
        count them again before the next claim."""
        with self._changing:
            self._epochs.pop(campaign, None)
            if miscounted:
                self._miscounted.add(campaign)

    def _holds_fence(self, campaign: str) -> bool:
        serial, campaigns = getattr(self._fenced, "held", (0, set()))
        return serial == self.store.transaction() and self.store.in_transaction() and campaign in campaigns

    def _make_current(self, campaign: str) -> int:
        """The epoch to claim under: the first claim of a campaign, or the first since its counters were found
        gone or counted under another epoch, makes sure Redis holds them under PostgreSQL's epoch (rebuilding
        them if not). Each claim's script and record check it again."""
        epoch = self._epochs.get(campaign)
        if epoch is not None:
            return epoch
        if self._holds_fence(campaign):  # a rebuild would wait for this very transaction
            raise ClaimsRebuilding("Redis 计数需重建 / the claims' counters in Redis are gone; rebuilding, retry")
        if campaign not in self._miscounted:
            row = self.store._run("SELECT epoch FROM claims_epochs WHERE campaign=?", (campaign,)).fetchone()
            try:
                held = self.counters.epoch(campaign)
            except redis.RedisError as exc:
                raise ClaimsRebuilding(f"Redis 不可用 / Redis is unavailable for claims: {exc}") from exc
            if row is not None and held == row[0]:  # current
                epoch = int(row[0])
                with self._changing:
                    self._epochs[campaign] = epoch
                return epoch
        return self.rebuild(campaign)

    def rebuild(self, campaign: str) -> int:
        """Count the campaign's claims again from PostgreSQL into Redis under a new epoch, once every claim
        writer in flight has finished (the fence, exclusive), on a connection of its own; the epoch."""
        with self._rebuilding:
            if (current := self._epochs.get(campaign)) is not None:
                return current  # another thread of this store rebuilt it meanwhile
            miscounted = campaign in self._miscounted
            try:
                with psycopg.connect(self.store.url, autocommit=True, connect_timeout=5) as db:
                    db.execute(f"SET search_path TO {self.store.schema}")
                    db.execute(f"SET lock_timeout = '{_REBUILD_LOCK_TIMEOUT}'")
                    with db.transaction():
                        epoch = self._rebuild_on(db, campaign, miscounted)
            except (psycopg.errors.LockNotAvailable, redis.RedisError) as exc:
                raise ClaimsRebuilding(f"Redis 计数重建未完成 / rebuilding the claims' counters failed: {exc}") from exc
            with self._changing:
                self._epochs[campaign] = epoch
                self._miscounted.discard(campaign)
            return epoch

    def _rebuild_on(self, db: psycopg.Connection[Any], campaign: str, miscounted: bool) -> int:
        db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self._fence_key(campaign),))
        row = db.execute("SELECT epoch FROM claims_epochs WHERE campaign = %s", (campaign,)).fetchone()
        if not miscounted and row is not None and self.counters.epoch(campaign) == row[0]:
            return int(row[0])  # another process rebuilt it while this one waited for the fence
        epoch = (row[0] if row is not None else 0) + 1
        self.counters.load(campaign, epoch, recount(db, campaign))
        db.execute("INSERT INTO claims_epochs (campaign, epoch) VALUES (%s, %s) ON CONFLICT (campaign) "
                   "DO UPDATE SET epoch = excluded.epoch", (campaign, epoch))
        return epoch

    # -- reading the counters ----------------------------------------------------------
    def spent(self, campaign: str, trigger: str | None = None) -> int:
        """From Redis while it holds the campaign's current epoch; else summed from the decisions."""
        share = CAMPAIGN_SHARE if trigger is None else TRIGGER_SHARE + trigger
        row = self.store._run("SELECT epoch FROM claims_epochs WHERE campaign=?", (campaign,)).fetchone()
        if campaign in self._miscounted:  # Redis counts claims nobody recorded until the next claim rebuilds
            row = None
        with contextlib.suppress(redis.RedisError):  # Redis away: PostgreSQL's sum, as for a stale epoch
            found = self.counters.spent(campaign, share, int(row[0])) if row is not None else None
            if found is not None:
                return found
        where, args = ("", ()) if trigger is None else (" AND d.trigger=?", (trigger,))
        [(fen,)] = self.store._run(f"SELECT COALESCE(sum({FACE}), 0) FROM decisions d JOIN templates t ON "
                                   f"t.id = d.template_id WHERE d.campaign=? AND d.reason IS NULL{where}",
                                   (campaign, *args)).fetchall()
        return int(fen)

    def stock_used(self, campaign: str) -> dict[str, int]:
        """From the decisions: the stock table is not kept while Redis counts."""
        return {str(template): int(n) for template, n in self.store._run(
            "SELECT template, count(*) FROM decisions WHERE campaign=? AND reason IS NULL GROUP BY template",
            (campaign,))}

    def totals(self, campaign: str) -> CampaignTotals:
        """From the decisions: the stock and budget tables are not kept while Redis counts."""
        stock = self.stock_used(campaign)
        [(spent, issued, suppressed)] = self.store._run(
            f"SELECT COALESCE(sum({FACE}) FILTER (WHERE d.reason IS NULL), 0), count(*) FILTER (WHERE d.reason "
            "IS NULL), count(*) FILTER (WHERE d.reason IS NOT NULL) FROM decisions d LEFT JOIN templates t "
            "ON t.id = d.template_id WHERE d.campaign=?", (campaign,)).fetchall()
        return CampaignTotals(int(spent), stock, int(issued), int(suppressed))


# The rebuild's aggregates hash up to a group per user and broadcast: with the default work_mem (4 MB) they spill
# to disk from about 100,000 decisions (bench/rebuild.py: a quarter of a 1,000,000-decision rebuild's time).
_RECOUNT_WORK_MEM = "64MB"


def recount(db: psycopg.Connection[Any], campaign: str, work_mem: str = _RECOUNT_WORK_MEM) -> Recount:
    """The campaign's counters, counted from its issued coupons in PostgreSQL: aggregates (a row per counter, never
    one per decision), in a transaction of their own (or a savepoint of the caller's) with room to hash them."""
    counts = Recount()
    issued = "FROM decisions d WHERE d.campaign = %s AND d.reason IS NULL"
    with db.transaction():
        db.execute(f"SET LOCAL work_mem = '{work_mem}'")
        for template, n in db.execute(f"SELECT d.template, count(*) {issued} GROUP BY d.template", (campaign,)):
            counts.stock[template] = n
        counts.spent[CAMPAIGN_SHARE] = 0
        for trigger, room, fen in db.execute(
                f"SELECT d.trigger, d.room, sum({FACE}) FROM decisions d JOIN templates t ON t.id = d.template_id "
                "WHERE d.campaign = %s AND d.reason IS NULL GROUP BY d.trigger, d.room", (campaign,)):
            for share in (CAMPAIGN_SHARE, TRIGGER_SHARE + trigger, ROOM_SHARE + room):
                counts.spent[share] = counts.spent.get(share, 0) + int(fen)
        for room, broadcast, user, n in db.execute(
                f"SELECT d.room, d.broadcast, d.\"user\", count(*) {issued} GROUP BY d.room, d.broadcast, d.\"user\"",
                (campaign,)):
            counts.per_user[_broadcast_field(room, broadcast, user)] = n
        for device, n in db.execute(f"SELECT d.device_key, count(*) {issued} AND d.device_key IS NOT NULL "
                                    "GROUP BY d.device_key", (campaign,)):
            counts.devices[device] = n
        for user, at in db.execute(f"SELECT d.\"user\", max(d.at) {issued} GROUP BY d.\"user\"", (campaign,)):
            counts.last[user] = at
    return counts
