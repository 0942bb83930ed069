"""The store on PostgreSQL (psycopg 3), for many processes on many machines (SPEC §7).

The SQL is shared with SQLite (:mod:`.relational`). What differs: every deployment's
tables live in their own schema (``--name``), and a campaign's claims (stock, budget,
``per_user``, ``min_interval``, ``per_device``) are decided under a transaction-scoped
advisory lock on that campaign, so however many workers issue at once, each batch sees
the counts the one before it left, and the conditional writes never find them moved.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, TypeVar

import psycopg
import redis

from livecoupon.domain.campaign import Limits
from livecoupon.domain.decisions import Decision, IssueRequest, knows_device, learnt_elsewhere
from livecoupon.errors import Unavailable
from livecoupon.store.port import CampaignTotals, Snapshot
from livecoupon.store.redis import (
    FACE,
    RECORD_CLAIMS_FUNCTION,
    ClaimsRebuilding,
    RedisClaims,
    RedisCounters,
    deployment_fence,
)
from livecoupon.store.relational import (
    INTERN_TEMPLATE,
    LATEST_SNAPSHOT,
    OPERATOR_ENTRY,
    TEMPLATE_ID,
    Query,
    Reads,
    RelationalStore,
    visit_query,
)

T = TypeVar("T")

_TABLES = f"""
CREATE TABLE IF NOT EXISTS templates (
    id BIGSERIAL PRIMARY KEY, campaign TEXT NOT NULL, name TEXT NOT NULL, title TEXT NOT NULL, kind TEXT NOT NULL,
    threshold BIGINT NOT NULL, amount BIGINT NOT NULL, percent_tenths INTEGER NOT NULL, max_discount BIGINT,
    scope TEXT NOT NULL,
    UNIQUE NULLS NOT DISTINCT (campaign, name, title, kind, threshold, amount, percent_tenths, max_discount, scope));
CREATE TABLE IF NOT EXISTS decisions (
    seq BIGSERIAL PRIMARY KEY, coupon_id TEXT NOT NULL UNIQUE, campaign TEXT NOT NULL,
    room TEXT NOT NULL, broadcast BIGINT NOT NULL, trigger TEXT NOT NULL, "user" TEXT NOT NULL,
    template TEXT, template_id BIGINT, at BIGINT NOT NULL, reason TEXT,
    expires_at BIGINT, experiment TEXT, variant TEXT,
    state TEXT, order_id TEXT, reserved_until BIGINT, device_key TEXT, propensity DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS coupons_by_user ON decisions ("user", at) WHERE reason IS NULL;
CREATE TABLE IF NOT EXISTS coupon_history (
    seq BIGSERIAL PRIMARY KEY, coupon_id TEXT NOT NULL, at BIGINT NOT NULL, state TEXT NOT NULL,
    action TEXT NOT NULL, order_id TEXT, detail TEXT NOT NULL DEFAULT '{{}}');
CREATE INDEX IF NOT EXISTS history_by_coupon ON coupon_history (coupon_id, seq);
CREATE TABLE IF NOT EXISTS template_stock (
    campaign TEXT NOT NULL, template TEXT NOT NULL, issued BIGINT NOT NULL, PRIMARY KEY (campaign, template));
CREATE TABLE IF NOT EXISTS campaign_budget (campaign TEXT PRIMARY KEY, spent BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS budget_shares (campaign TEXT NOT NULL, share TEXT NOT NULL, spent BIGINT NOT NULL,
    PRIMARY KEY (campaign, share));
CREATE TABLE IF NOT EXISTS visits (campaign TEXT NOT NULL, "user" TEXT NOT NULL, PRIMARY KEY (campaign, "user"));
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY, "user" TEXT NOT NULL, cart TEXT NOT NULL, coupon_id TEXT,
    subtotal BIGINT NOT NULL, discount BIGINT NOT NULL, payable BIGINT NOT NULL,
    state TEXT NOT NULL, created_at BIGINT NOT NULL, reserved_until BIGINT, room TEXT);
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq BIGSERIAL PRIMARY KEY, body TEXT NOT NULL, log TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS events_by_log ON events (log, seq);
CREATE INDEX IF NOT EXISTS operator_entries ON events (log, seq) WHERE {OPERATOR_ENTRY};
CREATE TABLE IF NOT EXISTS engine_snapshots (
    log TEXT NOT NULL, fingerprint TEXT NOT NULL, position BIGINT NOT NULL, body BYTEA NOT NULL,
    PRIMARY KEY (log, fingerprint, position));
CREATE TABLE IF NOT EXISTS ledger_confirmations (coupon_id TEXT PRIMARY KEY, at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS acknowledgements (coupon_id TEXT PRIMARY KEY, at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS claims_redis (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), url TEXT NOT NULL,
    tag TEXT NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text));
CREATE TABLE IF NOT EXISTS roster (campaign TEXT PRIMARY KEY, position BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS claims_epochs (campaign TEXT PRIMARY KEY, epoch BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS user_facts ("user" TEXT PRIMARY KEY, device TEXT, device_at BIGINT, risk DOUBLE PRECISION,
    risk_at BIGINT);
"""
# What the platform told of each user (SPEC §2: their device and risk are those of their latest event that carried
# one), whichever room it came in, each kept if it is the latest: gateways write it as they take the events, and each
# partition's claims read it for what its own rooms did not tell (see PostgresStore.share_facts)
_SHARE_FACTS = """
INSERT INTO user_facts ("user", device, device_at, risk, risk_at)
SELECT * FROM unnest(?::text[], ?::text[], ?::bigint[], ?::float8[], ?::bigint[])
ON CONFLICT ("user") DO UPDATE SET
    device = CASE WHEN excluded.device_at >= COALESCE(user_facts.device_at, -1) THEN excluded.device
             ELSE user_facts.device END,
    device_at = GREATEST(user_facts.device_at, excluded.device_at),
    risk = CASE WHEN excluded.risk_at >= COALESCE(user_facts.risk_at, -1) THEN excluded.risk ELSE user_facts.risk END,
    risk_at = GREATEST(user_facts.risk_at, excluded.risk_at)
WHERE (excluded.device IS NOT NULL AND excluded.device IS DISTINCT FROM user_facts.device)
    OR (excluded.risk IS NOT NULL AND excluded.risk IS DISTINCT FROM user_facts.risk)
"""
_SHARED_FACTS = 'SELECT "user", device, device_at, risk, risk_at FROM user_facts WHERE "user" = ANY(?)'
# a user's device and when it was told, and their risk and when (None, None: not told)
ToldFacts = tuple[str | None, int | None, float | None, int | None]
NOT_TOLD: Final[ToldFacts] = (None, None, None, None)
# Read only by claims decided in PostgreSQL (per_user, min_interval over many users, per_device, a trigger's budget
# share summed on its first claim): a deployment that claims through Redis drops them (every decision row it inserts
# would update them for nothing: without coupons_by_trigger alone, a 50-row insert costs the backend 10% less CPU),
# and a move back to PostgreSQL's claims builds them again before counting. While Redis is away, its spent() scans.
_CLAIM_INDEXES = {
    "coupons_by_broadcast": 'decisions (campaign, room, broadcast, "user") WHERE reason IS NULL',
    "coupons_by_time": "decisions (campaign, at) WHERE reason IS NULL",
    "coupons_by_device": "decisions (campaign, device_key) WHERE reason IS NULL AND device_key IS NOT NULL",
    "coupons_by_trigger": "decisions (campaign, trigger, template_id) WHERE reason IS NULL",
}
# decisions.template_id names a templates row committed before any decision refers to it (interned on a
# connection of its own, never deleted): no foreign key, whose check took a lock on that one hot templates row
# for every decision row every writer inserts. A schema made before loses it once (the catalog is read first,
# so a schema without it is never locked).
_DROP_TEMPLATE_FK = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'decisions'::regclass
             AND conname = 'decisions_template_id_fkey') THEN
    ALTER TABLE decisions DROP CONSTRAINT decisions_template_id_fkey;
  END IF;
END $$;
"""

DEFAULT_NAME = "livecoupon"
IN_POSTGRESQL = "postgresql"  # --claims postgresql: claims in PostgreSQL, moved back from Redis if they were there

# Moving a deployment's claims back from Redis: the counters PostgreSQL's claims read were not kept meanwhile, so they
# are counted again from the decisions (a budget share without a row is summed from them on its first claim).
_RECOUNT_TABLES = (
    "DELETE FROM template_stock",
    "DELETE FROM campaign_budget",
    "DELETE FROM budget_shares",
    "INSERT INTO template_stock (campaign, template, issued) SELECT campaign, template, count(*) FROM decisions "
    "WHERE reason IS NULL AND template IS NOT NULL GROUP BY campaign, template",
    f"INSERT INTO campaign_budget (campaign, spent) SELECT d.campaign, sum({FACE}) FROM decisions d JOIN templates t "
    "ON t.id = d.template_id WHERE d.reason IS NULL GROUP BY d.campaign",
)


def schema_name(name: str) -> str:
    """The PostgreSQL schema of a deployment named ``name`` (``--name``)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,47}", name):
        raise ValueError(f"--name {name!r}: use a-z, 0-9 and _, starting with a letter (at most 48)")
    return name


def deployment_exists(url: str, name: str) -> bool:
    """Whether a deployment named ``name`` has its schema on the server (opening a store would make one)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as db:
        found = db.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                           (schema_name(name),)).fetchone()
    return found is not None


def _by(fact: T | None, told_at: int | None, at: int) -> T | None:
    """A fact if it was told by ``at``, else None."""
    return fact if told_at is not None and told_at <= at else None


class PostgresStore(RelationalStore):
    """The store in one PostgreSQL schema; a connection per thread.

    Claims go through Redis when the deployment says so (``claims_redis``, recorded by a store opened
    with ``claims=``): every process of the deployment then claims the same way (:mod:`.redis`).
    """

    BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
    # the json type keeps its text: each element comes out as written
    APPEND_EVENTS = ("INSERT INTO events (log, body) SELECT ?, e.value::text "
                     "FROM json_array_elements(?::json) WITH ORDINALITY AS e(value, n) ORDER BY e.n")

    def __init__(self, url: str, name: str = DEFAULT_NAME, log: str = "", prepare: bool = True,
                 claims: str | None = None) -> None:
        """``prepare=False``: the deployment's tables exist already; no connection is opened until first used
        (so a partition's store connects on its own writer thread). ``claims``: ``redis://…`` to keep the
        claims' counters in that Redis, recorded for the deployment; None: as the deployment recorded."""
        super().__init__(log)
        self.url = url
        self.schema = schema_name(name)
        self._sql: dict[str, str] = {}
        if claims is not None and claims != IN_POSTGRESQL and not claims.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"--claims {claims!r}: give a redis:// URL, or {IN_POSTGRESQL}")
        self._claims_url = claims
        self._redis: RedisClaims | None = None
        self._claims_resolved = False
        self._resolving = threading.Lock()
        if not prepare:
            return
        with self.unit_of_work():
            self._lock_schema()
            self._db.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            self._db.execute(_TABLES)
            self._db.execute(_DROP_TEMPLATE_FK)
            self._db.execute(RECORD_CLAIMS_FUNCTION)
        try:
            redis = self.redis_claims()  # recorded; a Redis that cannot hold claims safely is refused
            with self.unit_of_work():  # under the schema's lock too: CREATE INDEX IF NOT EXISTS is no guard against
                self._lock_schema()    # another process creating it at the same moment (a worker of a new
                self._index_for(redis)  # deployment started beside another exited on a duplicate key)
        except Exception:
            self.close()
            raise

    def _lock_schema(self) -> None:
        self._run("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"schema:{self.schema}",))

    def _index_for(self, claims: RedisClaims | None) -> None:
        """The indexes only PostgreSQL's own claims read: built while they decide, dropped while Redis does (a
        drop locks ``decisions`` once; a statement for an index already there, or already gone, changes nothing)."""
        for index, on in _CLAIM_INDEXES.items():
            if claims is None:
                self._run(f"CREATE INDEX IF NOT EXISTS {index} ON {on}")
            elif self._run("SELECT to_regclass(?) IS NOT NULL", (f"{self.schema}.{index}",)).fetchone() == (True,):
                self._run(f"DROP INDEX IF EXISTS {index}")

    def redis_claims(self) -> RedisClaims | None:
        """The deployment's claims in Redis, if it keeps them there (resolved once, on first use; a store
        given ``claims`` records them). Its keys carry the deployment's random tag: two deployments of one
        name on two PostgreSQL servers never count in each other's keys."""
        if self._claims_resolved:
            return self._redis
        with self._resolving:
            if not self._claims_resolved:
                asked = self._claims_url
                if asked == IN_POSTGRESQL:
                    self._leave_redis()
                    row = None
                elif asked is not None:
                    row = self._run("INSERT INTO claims_redis (url) VALUES (?) ON CONFLICT (one) DO UPDATE "
                                    "SET url = excluded.url RETURNING url, tag", (asked,)).fetchone()
                else:
                    row = self._run("SELECT url, tag FROM claims_redis").fetchone()
                self._claims_url = None  # recorded once: from then on this store follows the deployment's record
                self._redis = None
                if row is not None:
                    url, tag = row
                    counters = RedisCounters(url, f"{self.schema}.{tag}")
                    try:
                        counters.check_settings()
                    except redis.RedisError as exc:
                        counters.close()
                        raise ClaimsRebuilding(f"Redis 不可用 / Redis {url} is unavailable for claims: {exc}") from exc
                    self._redis = RedisClaims(self, counters, tag)
                self._claims_resolved = True
        return self._redis

    def claims_moved(self) -> None:
        """The deployment's claims moved back to PostgreSQL since this store looked: it claims there from now on."""
        with self._resolving:
            self._claims_resolved = False

    def _leave_redis(self) -> None:
        """``--claims postgresql`` on a deployment that claims through Redis: once every claim through Redis in
        flight has ended (the deployment's fence, exclusive) and under every campaign's claims lock, the
        counters PostgreSQL's claims read are counted again from the decisions, and the deployment claims in
        PostgreSQL from then on (claims through Redis still on their way record nothing: :class:`ClaimsMoved`)."""
        with self.unit_of_work():
            row = self._run("SELECT url, tag FROM claims_redis FOR UPDATE").fetchone()
            if row is None:
                return
            self._run("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (deployment_fence(self.schema),))
            campaigns = {c for (c,) in self._run("SELECT campaign FROM claims_epochs")}
            campaigns |= {c for (c,) in self._run("SELECT DISTINCT campaign FROM decisions")}
            for campaign in sorted(campaigns):
                self._run(*self._lock_query(campaign))  # type: ignore[misc]
            self._index_for(None)
            for statement in _RECOUNT_TABLES:
                self._run(statement)
            self._run("DELETE FROM claims_redis")
        left = RedisCounters(row[0], f"{self.schema}.{row[1]}")
        try:
            left.drop()  # the counters of that period are never read again (a next one has another tag)
        except redis.RedisError:
            pass
        finally:
            left.close()

    # -- the claims ledger: in Redis when the deployment keeps its counters there --------------
    def issue(self, requests: Sequence[IssueRequest], limits: Limits) -> list[Decision]:
        requests = self._with_shared_facts(requests, limits)
        claims = self.redis_claims()
        return claims.issue(requests, limits) if claims is not None else super().issue(requests, limits)

    def passing_caps(self, requests: Sequence[IssueRequest], limits: Limits) -> list[IssueRequest]:
        requests = self._with_shared_facts(requests, limits)
        claims = self.redis_claims()
        if claims is None:
            return super().passing_caps(requests, limits)
        return claims.passing_caps(requests, limits)

    # -- what the platform told of users, shared by every partition ----------------------------
    def share_facts(self, facts: dict[str, ToldFacts]) -> None:
        """Keep what a batch told of its users (each user's latest device and risk in it, and when), each where it
        is later than what is kept. Scaled out, a user's events reach the partition of each room they are in: a risk
        sent in room A's events, or the device a join in room A came from, was unknown to room B's partition, whose
        claims then let the user past ``max_risk`` and counted their coupons on no device (``per_device`` exceeded).
        A fact told again as it is kept writes nothing (a platform tells the same device on every heartbeat). The
        users in order: two gateways writing the same users lock their rows in the same order (else a deadlock)."""
        if not facts:
            return
        users = sorted(facts)
        columns = [[facts[u][i] for u in users] for i in range(4)]
        with self.unit_of_work():
            self._run(_SHARE_FACTS, (users, *columns))

    def _with_shared_facts(self, requests: Sequence[IssueRequest], limits: Limits) -> Sequence[IssueRequest]:
        """The requests with what the deployment's rooms told of their users (:meth:`share_facts`) by the request's
        time: the latest risk, where the campaign caps it, and the device a cap counts on, where their engine knew
        none (a batch's later events are shared before its earlier ones are applied: a fact told after the request's
        time is not used, and the engine's own stands)."""
        wanted = {r.user for r in requests if limits.max_risk is not None or not knows_device(r)}
        if not wanted:
            return requests
        known = {row[0]: row[1:] for row in self._run(_SHARED_FACTS, (list(wanted),))}
        if not known:
            return requests
        filled = []
        for r in requests:
            device, device_at, risk, risk_at = known.get(r.user, NOT_TOLD)
            filled.append(learnt_elsewhere(r, _by(device, device_at, r.at), _by(risk, risk_at, r.at)))
        return filled

    def spent(self, campaign: str, trigger: str | None = None) -> int:
        claims = self.redis_claims()
        return claims.spent(campaign, trigger) if claims is not None else super().spent(campaign, trigger)

    def stock_used(self, campaign: str) -> dict[str, int]:
        claims = self.redis_claims()
        return claims.stock_used(campaign) if claims is not None else super().stock_used(campaign)

    def totals(self, campaign: str) -> CampaignTotals:
        claims = self.redis_claims()
        return claims.totals(campaign) if claims is not None else super().totals(campaign)

    def mark_visited(self, campaign: str, user: str) -> bool:
        """Under the campaign's claims lock, taken before the visit's row, as a claim takes it before it may go on to
        record a visit (a join's coupon, then the next join's visit): a round that recorded a visit and then waited
        for the lock, while the lock's holder waited for that visit's row, was a deadlock between two partitions
        (PostgreSQL failed one, and its retry ran into it again). One round trip for both. Claims through Redis
        hold no such lock, and take none here."""
        if self.redis_claims() is not None:
            return super().mark_visited(campaign, user)
        lock = self._lock_query(campaign)
        assert lock is not None
        with self.unit_of_work():
            return self._write([lock, visit_query(campaign, user)])[1] == 1

    def _claiming(self, campaign: str) -> Reads:
        """The claims lock, and a guard: once the deployment claims through Redis (another process started
        with ``--claims`` since this store looked), the counters read here are no longer kept."""
        reads = super()._claiming(campaign)

        def moved(rows: list[tuple[Any, ...]]) -> None:
            if rows:
                self._claims_resolved = False
                raise ClaimsRebuilding("此部署的领取计数已移至 Redis / this deployment claims through Redis now; "
                                       "retry")
        reads.add(("SELECT url FROM claims_redis", ()), moved)
        return reads

    def _intern_template(self, terms: Sequence[Any]) -> int:
        """Committed on a connection of its own before any decision refers to it, so a writer whose
        transaction rolls back never takes with it a row another writer's decisions name (the id is cached
        for every thread of the store). Opened for the purpose and closed: a store interns a template once,
        and a process holds a store per partition."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as db:
            db.execute(f"SET search_path TO {self.schema}")
            db.execute(self._translate(INTERN_TEMPLATE), terms)
            return int(db.execute(self._translate(TEMPLATE_ID), terms).fetchone()[0])  # type: ignore[index]

    def _connect(self) -> psycopg.Connection[Any]:
        db = psycopg.connect(self.url, autocommit=True)
        db.execute(f"SET search_path TO {self.schema}")
        return db

    def _is_lost(self, db: psycopg.Connection[Any]) -> bool:
        return db.broken or db.closed

    def _translate(self, sql: str) -> str:
        found = self._sql.get(sql)
        if found is None:
            found = self._sql[sql] = sql.replace("?", "%s")
        return found

    def latest_snapshot(self, fingerprint: str) -> Snapshot | None:
        """The body in the binary format: tens of MiB that as text come as hex, decoded in Python (26 MiB in
        0.09-0.12 s against 0.30-0.40, measured)."""
        row = self._run(LATEST_SNAPSHOT, (self.log, fingerprint), binary=True).fetchone()
        return Snapshot(row[0], fingerprint, row[1]) if row else None

    # -- a claim's unit of work: BEGIN with its first reads, COMMIT with its last write --------
    @contextlib.contextmanager
    def claiming(self) -> Iterator[None]:
        """A unit of work whose BEGIN is sent with its first statements and whose COMMIT may go with its
        last write (:meth:`_fetch_committing`): a claim alone is one round trip to PostgreSQL.
        Inside the caller's unit of work, that one (its BEGIN and COMMIT are the caller's)."""
        if self.in_transaction():
            with self.unit_of_work():
                yield
            return
        local = self._local
        self._db  # noqa: B018 - connected (or reconnected) before the unit of work counts as begun
        local.depth, local.serial = 1, getattr(local, "serial", 0) + 1
        local.begin_pending, local.claiming, local.committed = True, True, False
        try:
            yield
        except BaseException:
            if not (local.begin_pending or local.committed):
                self._run("ROLLBACK")
            raise
        else:
            if not (local.begin_pending or local.committed):
                self._run("COMMIT")
        finally:
            local.depth, local.begin_pending, local.claiming = 0, False, False

    def _begin_now(self) -> bool:
        """Whether this statement is the first of a :meth:`claiming` unit of work (its BEGIN goes first)."""
        if not getattr(self._local, "begin_pending", False):
            return False
        self._local.begin_pending = False
        return True

    def _fetch_committing(self, queries: Sequence[Query]) -> list[list[tuple[Any, ...]]]:
        """Each query's rows, the queries sent together; when they end a :meth:`claiming` unit of work of this
        call's own, its BEGIN (if still pending) and its COMMIT go with them (one round trip), or, a single
        statement that is the whole unit of work, it runs as its own transaction; after it, nothing more is part
        of that unit of work."""
        local = self._local
        if not (getattr(local, "claiming", False) and local.depth == 1):
            return self._fetch(queries)
        if len(queries) == 1 and self._begin_now():
            local.committed = True  # ended, whatever its outcome: the server rolls a failed statement back
            return [self._alone(*queries[0]).fetchall()]
        rows = [cursor.fetchall() for cursor in self._pipelined(queries, then="COMMIT")]
        local.committed = True
        return rows

    def in_failed_transaction(self) -> bool:
        """Whether this thread's transaction failed (a statement was refused): nothing more runs in it until it ends."""
        status: psycopg.pq.TransactionStatus = self._db.info.transaction_status
        return status == psycopg.pq.TransactionStatus.INERROR

    def _alone(self, sql: str, args: Sequence[Any]) -> psycopg.Cursor[Any]:
        """One statement as a transaction of its own: one message, no BEGIN nor COMMIT around it (a pipeline
        sends each statement as a write of its own, and each wakes the server). On a connection found lost (a
        restart, a failover), once more on a new one: the claims' record it sends finds its ids recorded if the
        first one committed after all, and the claim is made again from them."""
        return self._execute(sql, args, again=True)

    def _run(self, sql: str, args: Sequence[Any] = (), binary: bool = False) -> psycopg.Cursor[Any]:
        """``binary``: the rows in PostgreSQL's binary format (a snapshot's body: as text, bytea travels as hex)."""
        if getattr(self._local, "begin_pending", False):
            return self._pipelined([(sql, args)])[0]  # with the BEGIN before it
        # the first statement (a read, or a transaction's BEGIN) on a connection the server had closed (a restart,
        # a failover) never ran: once more, on a new connection
        return self._execute(sql, args, binary, again=getattr(self._local, "depth", 0) == 0)

    def _execute(self, sql: str, args: Sequence[Any], binary: bool = False, *, again: bool) -> psycopg.Cursor[Any]:
        """One statement on this thread's connection; where that connection turns out lost, once more on a new one
        if ``again``, else 503 (the transaction it was part of is gone)."""
        db = self._db
        try:
            return db.execute(self._translate(sql), args, binary=binary)  # type: ignore[no-any-return]
        except psycopg.OperationalError as exc:
            if not db.broken:
                raise
            if again:
                return self._db.execute(self._translate(sql), args, binary=binary)  # type: ignore[no-any-return]
            raise Unavailable("数据库连接中断，请重试 / the database connection was lost; retry",
                              code="store_unavailable") from exc

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        with self._db.cursor() as cursor:
            cursor.executemany(self._translate(sql), rows)
            changed: int = cursor.rowcount
            return changed

    def _lock_query(self, campaign: str) -> Query | None:
        return "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"{self.schema}:claims:{campaign}",)

    def _fetch(self, queries: Sequence[Query]) -> list[list[tuple[Any, ...]]]:
        """The queries sent together in pipeline mode: one round trip, not one each."""
        if len(queries) < 2 and not getattr(self._local, "begin_pending", False):
            return super()._fetch(queries)
        return [cursor.fetchall() for cursor in self._pipelined(queries)]

    def _write(self, statements: Sequence[Query]) -> list[int]:
        if len(statements) < 2 and not getattr(self._local, "begin_pending", False):
            return super()._write(statements)
        return [cursor.rowcount for cursor in self._pipelined(statements)]

    def _pipelined(self, statements: Sequence[Query], then: str | None = None) -> list[psycopg.Cursor[Any]]:
        """Each statement on a cursor of its own, all sent before any answer is awaited (after a pending
        BEGIN; ``then``: a statement after them, COMMIT)."""
        begin, db = self._begin_now(), self._db
        try:
            return self._send(db, statements, begin, then)
        except psycopg.OperationalError:
            if not (begin and db.broken):
                raise
            # the first statements of a unit of work, on a connection the server had closed (a restart, a
            # failover): they never ran; once more, on a new connection (in the same unit of work)
            db, self._local.depth = self._db, 1
            return self._send(db, statements, begin, then)

    def _send(self, db: psycopg.Connection[Any], statements: Sequence[Query], begin: bool,
              then: str | None) -> list[psycopg.Cursor[Any]]:
        cursors = [db.cursor() for _ in statements]
        with db.pipeline():
            if begin:
                db.execute("BEGIN")
            for cursor, (sql, args) in zip(cursors, statements, strict=True):
                cursor.execute(self._translate(sql), args)
            if then is not None:
                db.execute(then)
        return cursors

    def close(self) -> None:
        super().close()
        if self._redis is not None:
            self._redis.counters.close()

    def drop(self) -> None:
        """Remove the deployment's schema and everything in it, its counters in Redis too (tests, and
        tearing a deployment down)."""
        claims = self.redis_claims()
        if claims is not None:
            claims.counters.drop()
        self._db.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self.close()


class Reconnecting:
    """One autocommit connection of its own (leases, webhook outcomes), opened when first needed and
    again after it was lost: a call that finds it lost raises, and the next call opens a new one.
    ``setup`` runs on each new connection (a ``search_path``)."""

    def __init__(self, url: str, setup: str | None = None) -> None:
        self.url, self.setup = url, setup
        self._conn: psycopg.Connection[Any] | None = None

    def do(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            if self.setup is not None:
                self._conn.execute(self.setup)
        try:
            return work(self._conn)
        except psycopg.OperationalError:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
