"""The built-in simulator provider: the embedded default, needing no accounts anywhere.

It behaves like a real upstream (eSIM Access is the model): our reference is an idempotency key,
some orders are allocated asynchronously, every eSIM has an ICCID and a stable provider id, and
its state lives in its own ``sim_*`` tables. Every call is one short transaction, so several
gateway processes can share one simulator through the database.

Besides the port, it offers the device-side events a real upstream would observe (install,
attach, use, expiry, deletion) for the ``esimgate sim`` commands and for tests, suspension of a
line, and, when the account has a ``webhook_secret`` credential, signed notifications: it writes
them (:meth:`SimulatorProvider.notification`, ``X-Simulator-Signature: sha256=<HMAC-SHA256 of the
raw body>``) and verifies them (:meth:`SimulatorProvider.parse_webhook`) as a real upstream's
would be. The embedded simulator does not POST them itself: its state is esimgate's own database,
so nothing waits on them; they exist so the inbound webhook path can be exercised end to end.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from esimgate.clock import Clock
from esimgate.db.engine import unit_of_work
from esimgate.providers.base import (
    CancelResult,
    Capability,
    Coverage,
    EsimProfile,
    EsimRef,
    LogicalError,
    LogicalReason,
    Money,
    NetworkSighting,
    OrderRequest,
    ProviderNotice,
    ProviderPackage,
    Purchase,
    PurchaseState,
    TopUpRequest,
    TopUpResult,
    UsageReport,
)
from esimgate.providers.registry import AdapterConfig
from esimgate.providers.simulator.catalogue import ASYNC_PROVISIONING_COUNTRIES, build_catalogue
from esimgate.providers.simulator.iccid import (
    SMDP_ADDRESS,
    esim_id_for,
    iccid_for,
    imei_for,
    lpa_string,
    luhn_valid,
    new_matching_id,
)
from esimgate.providers.simulator.models import (
    LineState,
    PlanState,
    ProfileState,
    SimEsim,
    SimOrder,
    SimTopUp,
)

MAX_QUANTITY: Final = 10  # eSIMs per order (and top-ups per request)
MIB: Final = 1024**2
LAG_SAMPLES: Final = 50  # usage samples kept per eSIM for the reporting lag
LAG_TRACKED: Final = 10_000  # eSIMs whose samples one process keeps (least recent dropped)


def _refuse(reason: LogicalReason, message: str) -> LogicalError:
    return LogicalError(reason, message, provider=SimulatorProvider.kind)


class SimulatorProvider:
    """A seeded, realistic upstream that lives inside esimgate."""

    kind = "simulator"
    capabilities: frozenset[Capability] = frozenset(
        {
            Capability.CATALOGUE,
            Capability.ORDER,
            Capability.ASYNC_PROVISIONING,
            Capability.ORDER_LOOKUP,
            Capability.USAGE,
            Capability.BATCH_USAGE,
            Capability.TOPUP,
            Capability.CANCEL,
            Capability.SUSPEND,
        }
    )
    max_usage_batch = 100
    requests_per_second = 20.0  # the published limit a real upstream would have

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        account: str = "simulator",
        seed: int = 2026,
        async_delay_seconds: float = 30.0,
        latency_ms: float = 0.0,
        reporting_lag_seconds: float = 0.0,
        webhook_secret: str = "",
    ) -> None:
        self.account = account  # scopes rows: each simulator account is a separate upstream
        self.seed = seed
        self.async_delay = timedelta(seconds=async_delay_seconds)
        self.latency_ms = latency_ms
        # With a lag, query_usage reports usage as it was that long ago (see _lagged_usage).
        self.reporting_lag = timedelta(seconds=max(0.0, reporting_lag_seconds))
        self._samples: OrderedDict[str, deque[tuple[datetime, int]]] = OrderedDict()
        self._sessions = sessions
        self._clock = clock
        self._catalogue = build_catalogue(seed)
        self._packages = {p.provider_code: p for p in self._catalogue}
        self._webhook_key = webhook_secret.encode()
        if webhook_secret:
            self.capabilities = self.capabilities | {Capability.WEBHOOKS}

    @classmethod
    def from_config(cls, config: AdapterConfig) -> SimulatorProvider:
        credentials = config.credentials
        return cls(
            config.sessions,
            config.clock,
            account=config.name,
            seed=int(credentials.get("seed", "2026")),
            async_delay_seconds=float(credentials.get("async_delay_seconds", "30")),
            latency_ms=float(credentials.get("latency_ms", "0")),
            reporting_lag_seconds=float(credentials.get("reporting_lag_seconds", "0")),
            webhook_secret=credentials.get("webhook_secret", ""),
        )

    async def _upstream_latency(self) -> None:
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)

    # --- the port ---------------------------------------------------------------------------

    async def list_packages(self) -> Sequence[ProviderPackage]:
        await self._upstream_latency()
        return self._catalogue

    async def create_order(self, request: OrderRequest) -> Purchase:
        await self._upstream_latency()
        try:
            async with unit_of_work(self._sessions) as session:
                order = await self._order(session, request.reference)
                # A known reference is the same request again (eSIM Access transactionId):
                # answer with the original order, never buy twice.
                if order is None:
                    order = await self._place(session, request)
                return await self._purchase(session, order)
        except IntegrityError:
            # On PostgreSQL concurrent calls can all miss the lookup; the unique key on
            # (account, reference) lets exactly one insert win, and the others read its order.
            purchase = await self._find_purchase(request.reference)
            if purchase is None:
                raise
            return purchase

    async def get_order(
        self, reference: str, provider_order_id: str | None = None
    ) -> Purchase | None:
        await self._upstream_latency()
        return await self._find_purchase(reference)

    async def query_usage(self, esims: Sequence[EsimRef]) -> Sequence[UsageReport]:
        await self._upstream_latency()
        if len(esims) > self.max_usage_batch:
            raise _refuse(
                LogicalReason.REJECTED, f"at most {self.max_usage_batch} eSIMs per usage query"
            )
        if not esims:
            return []
        ids = [ref.provider_esim_id for ref in esims if ref.provider_esim_id]
        iccids = [ref.iccid for ref in esims if not ref.provider_esim_id]
        match = or_(SimEsim.provider_esim_id.in_(ids), SimEsim.iccid.in_(iccids))
        async with unit_of_work(self._sessions) as session:
            rows = (await session.execute(self._esims().where(match))).all()
            now = self._clock.now()
            found: dict[str, UsageReport] = {}
            for esim, order in rows:
                esim.settle(now)
                self._sample(esim, esim.last_usage_at or esim.created_at)
                report = self._report(esim, order, now, lagged=True)
                found[esim.provider_esim_id] = found[esim.iccid] = report
        # In the order asked, each eSIM once; unknown ones are simply absent.
        reports: dict[str, UsageReport] = {}
        for ref in esims:
            hit = found.get(ref.provider_esim_id or ref.iccid)
            if hit is not None:
                reports.setdefault(hit.esim.provider_esim_id, hit)
        return list(reports.values())

    async def top_up(self, request: TopUpRequest) -> TopUpResult:
        await self._upstream_latency()
        try:
            async with unit_of_work(self._sessions) as session:
                done = await self._topup(session, request.reference)
                if done is None:
                    done = await self._apply_topup(session, request)
                return _topup_result(done)
        except IntegrityError:
            # A concurrent call with the same reference won the insert; its outcome is ours.
            async with unit_of_work(self._sessions) as session:
                done = await self._topup(session, request.reference)
            if done is None:
                raise
            return _topup_result(done)

    async def cancel(self, esim: EsimRef) -> CancelResult:
        await self._upstream_latency()
        async with unit_of_work(self._sessions) as session:
            row, order = await self._locked_esim(session, _matching(esim))
            row.settle(self._clock.now())
            ref = _ref(row, order)
            refusal = _cancel_refusal(row)
            if refusal is not None:
                return CancelResult(ref, cancelled=False, reason=refusal)
            row.line_state = LineState.CANCELLED
            row.plan_state = PlanState.CANCELLED
            return CancelResult(
                ref, cancelled=True, refund=Money(order.unit_cost_e4, order.currency)
            )

    # --- suspension (operator actions) -------------------------------------------------------

    async def suspend(self, esim: EsimRef) -> None:
        """Bar the line; a suspended line stays suspended (repeating is harmless)."""
        await self._upstream_latency()

        def change(row: SimEsim, now: datetime) -> None:
            if row.line_state == LineState.CANCELLED or row.plan_state == PlanState.CANCELLED:
                raise _refuse(LogicalReason.NOT_ALLOWED, "the eSIM is cancelled")
            row.line_state = LineState.SUSPENDED

        await self._change_ref(esim, change)

    async def resume(self, esim: EsimRef) -> None:
        """Lift a suspension: the line is active again if it had ever attached."""
        await self._upstream_latency()

        def change(row: SimEsim, now: datetime) -> None:
            if row.line_state == LineState.CANCELLED or row.plan_state == PlanState.CANCELLED:
                raise _refuse(LogicalReason.NOT_ALLOWED, "the eSIM is cancelled")
            if row.line_state == LineState.SUSPENDED:
                active = row.activated_at is not None
                row.line_state = LineState.ACTIVE if active else LineState.NOT_ACTIVE

        await self._change_ref(esim, change)

    # --- notifications ----------------------------------------------------------------------

    def notification(
        self, kind: str, *, reference: str | None = None, iccid: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """A signed notification as this upstream sends it: headers and raw body."""
        if not self._webhook_key:
            raise _refuse(LogicalReason.NOT_ALLOWED, "this simulator account has no webhooks")
        event = {
            "id": uuid.uuid4().hex,
            "type": kind,
            "reference": reference,
            "iccid": iccid,
            "sentAt": self._clock.now().isoformat(),
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        return {"x-simulator-signature": self._signature(body)}, body

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, client_ip: str
    ) -> ProviderNotice:
        given = {k.lower(): v for k, v in headers.items()}.get("x-simulator-signature", "")
        if not self._webhook_key or not hmac.compare_digest(
            given.encode(), self._signature(body).encode()
        ):
            raise _refuse(LogicalReason.REJECTED, "bad or missing X-Simulator-Signature")
        try:
            event = json.loads(body)
        except ValueError:
            raise _refuse(LogicalReason.REJECTED, "not a simulator notification") from None
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise _refuse(LogicalReason.REJECTED, "not a simulator notification")
        reference, iccid, kind = event.get("reference"), event.get("iccid"), event.get("type")
        return ProviderNotice(
            event_id=event["id"][:200],
            kind=kind[:100] if isinstance(kind, str) else "unknown",
            reference=reference if isinstance(reference, str) and len(reference) <= 200 else None,
            iccid=iccid
            if isinstance(iccid, str) and iccid.isdigit() and len(iccid) <= 22
            else None,
        )

    def _signature(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self._webhook_key, body, hashlib.sha256).hexdigest()

    # --- device-side events (the `esimgate sim` commands) ------------------------------------

    async def install(
        self, iccid: str, device_model: str = "Simulated Phone", imei: str | None = None
    ) -> UsageReport:
        """A device downloads, installs and enables the profile."""
        if imei is not None and not (len(imei) == 15 and luhn_valid(imei)):
            raise ValueError(f"not a valid 15-digit IMEI: {imei!r}")

        def change(esim: SimEsim, now: datetime) -> None:
            if esim.profile_state != ProfileState.RELEASED:
                raise _refuse(LogicalReason.NOT_ALLOWED, f"profile is {esim.profile_state}")
            _require_live(esim)
            esim.profile_state = ProfileState.ENABLED
            esim.device_model = device_model
            esim.device_imei = imei or imei_for(esim.iccid)

        return await self._change(iccid, change)

    async def attach(self, iccid: str, country_code: str | None = None) -> UsageReport:
        """The device attaches to a network of the package's coverage (the first country unless
        ``country_code`` is given). The first attach activates the line: validity starts now."""

        def change(esim: SimEsim, now: datetime) -> None:
            if esim.profile_state != ProfileState.ENABLED:
                raise _refuse(LogicalReason.NOT_ALLOWED, f"profile is {esim.profile_state}")
            _require_live(esim)
            coverage = self._coverage(esim.package_code, country_code)
            # A stable choice per eSIM and country, like a phone sticking to its preferred PLMN.
            digest = hashlib.sha256(f"{esim.iccid}:{coverage.country_code}".encode()).digest()
            network = coverage.networks[digest[0] % len(coverage.networks)]
            esim.network_operator = network.operator
            esim.network_mcc, esim.network_mnc = network.mcc, network.mnc
            esim.network_country = coverage.country_code
            esim.network_type = "5G" if "5G" in network.radio else "4G - LTE"
            if esim.activated_at is None:
                esim.activated_at = now
                esim.expires_at = now + timedelta(days=esim.validity_days)
            esim.line_state = LineState.ACTIVE
            if esim.plan_state == PlanState.UNUSED:
                esim.plan_state = PlanState.IN_USE

        return await self._change(iccid, change)

    async def use(self, iccid: str, megabytes: float) -> UsageReport:
        """The device uses data (binary MB); the plan is depleted when it reaches its total."""
        if not math.isfinite(megabytes):
            raise ValueError("megabytes must be a finite number")
        if megabytes <= 0:
            raise ValueError("megabytes must be positive")
        used = round(megabytes * MIB)

        def change(esim: SimEsim, now: datetime) -> None:
            if esim.profile_state != ProfileState.ENABLED or esim.line_state != LineState.ACTIVE:
                raise _refuse(LogicalReason.NOT_ALLOWED, "the eSIM is not attached")
            if esim.plan_state != PlanState.IN_USE:
                raise _refuse(LogicalReason.NOT_ALLOWED, f"plan is {esim.plan_state}")
            self._sample(esim, esim.last_usage_at or esim.created_at)  # the usage before
            esim.used_bytes += used
            esim.last_usage_at = now
            if esim.total_bytes is not None and esim.used_bytes >= esim.total_bytes:
                esim.used_bytes = esim.total_bytes
                esim.plan_state = PlanState.DEPLETED
            self._sample(esim, now)

        return await self._change(iccid, change)

    async def expire(self, iccid: str) -> UsageReport:
        """The plan's validity ends now (an unused eSIM's install window, too)."""

        def change(esim: SimEsim, now: datetime) -> None:
            if esim.plan_state == PlanState.CANCELLED:
                raise _refuse(LogicalReason.NOT_ALLOWED, "plan is cancelled")
            if esim.plan_state != PlanState.EXPIRED:
                esim.plan_state = PlanState.EXPIRED
                if esim.expires_at is None or esim.expires_at > now:
                    esim.expires_at = now

        return await self._change(iccid, change)

    async def delete(self, iccid: str) -> UsageReport:
        """The user deletes the profile from the device; it can never be used again."""

        def change(esim: SimEsim, now: datetime) -> None:
            if esim.profile_state == ProfileState.RELEASED:
                raise _refuse(LogicalReason.NOT_ALLOWED, "profile was never installed")
            esim.profile_state = ProfileState.DELETED

        return await self._change(iccid, change)

    # --- orders -----------------------------------------------------------------------------

    async def _order(self, session: AsyncSession, reference: str) -> SimOrder | None:
        # Locked so two lookups cannot both allocate a pending order that just became ready.
        query = (
            select(SimOrder)
            .where(SimOrder.account == self.account, SimOrder.reference == reference)
            .with_for_update()
        )
        return (await session.scalars(query)).one_or_none()

    async def _find_purchase(self, reference: str) -> Purchase | None:
        async with unit_of_work(self._sessions) as session:
            order = await self._order(session, reference)
            return None if order is None else await self._purchase(session, order)

    def _orderable(self, request: OrderRequest) -> ProviderPackage:
        package = self._packages.get(request.provider_code)
        if package is None or package.is_topup:
            raise _refuse(
                LogicalReason.INVALID_PACKAGE, f"no base package {request.provider_code!r}"
            )
        if not 1 <= request.quantity <= MAX_QUANTITY:
            raise _refuse(LogicalReason.REJECTED, f"quantity must be 1 to {MAX_QUANTITY}")
        expected = request.expected_unit_cost
        if expected is not None and expected != package.cost:
            raise _refuse(
                LogicalReason.PRICE_CHANGED,
                f"unit cost is {package.cost.amount_e4} {package.cost.currency}, "
                f"not {expected.amount_e4} {expected.currency}",
            )
        return package

    async def _place(self, session: AsyncSession, request: OrderRequest) -> SimOrder:
        package = self._orderable(request)
        now = self._clock.now()
        deferred = (
            len(package.coverage) == 1
            and package.coverage[0].country_code in ASYNC_PROVISIONING_COUNTRIES
        )
        order = SimOrder(
            account=self.account,
            reference=request.reference,
            package_code=package.provider_code,
            quantity=request.quantity,
            unit_cost_e4=package.cost.amount_e4,
            currency=package.cost.currency,
            state=PurchaseState.PENDING,
            created_at=now,
            ready_at=now + self.async_delay if deferred else None,
        )
        session.add(order)
        await session.flush()  # insert first: the unique key decides between concurrent calls
        if not deferred:
            await self._allocate(session, order, now)
        return order

    async def _allocate(self, session: AsyncSession, order: SimOrder, now: datetime) -> None:
        package = self._packages[order.package_code]
        for position in range(order.quantity):
            # Serials come from the order's row id, so they are unique across all orders and
            # accounts, and allocating one order twice would hit the ICCID's unique key.
            serial = order.id * MAX_QUANTITY + position
            matching_id = new_matching_id()
            session.add(
                SimEsim(
                    order_id=order.id,
                    iccid=iccid_for(serial),
                    provider_esim_id=esim_id_for(serial),
                    package_code=order.package_code,
                    smdp_address=SMDP_ADDRESS,
                    matching_id=matching_id,
                    lpa=lpa_string(SMDP_ADDRESS, matching_id),
                    total_bytes=package.data_bytes,  # day passes: the per-day allowance
                    used_bytes=0,
                    validity_days=package.validity_days,
                    created_at=now,
                )
            )
        order.state = PurchaseState.COMPLETED
        await session.flush()

    async def _purchase(self, session: AsyncSession, order: SimOrder) -> Purchase:
        """The order as the upstream reports it now, allocating it if its time has come."""
        now = self._clock.now()
        if order.state == PurchaseState.PENDING and order.ready_at and order.ready_at <= now:
            await self._allocate(session, order, now)
        esims: Sequence[SimEsim] = ()
        if order.state == PurchaseState.COMPLETED:
            query = select(SimEsim).where(SimEsim.order_id == order.id).order_by(SimEsim.id)
            esims = (await session.scalars(query)).all()
        return Purchase(
            reference=order.reference,
            state=PurchaseState(order.state),
            provider_order_id=order.provider_order_id,
            esims=tuple(_profile(e) for e in esims),
            unit_cost=Money(order.unit_cost_e4, order.currency),
        )

    # --- eSIMs ------------------------------------------------------------------------------

    def _esims(self) -> Select[SimEsim, SimOrder]:
        return (
            select(SimEsim, SimOrder)
            .join(SimOrder, SimOrder.id == SimEsim.order_id)
            .where(SimOrder.account == self.account)
        )

    async def _locked_esim(
        self, session: AsyncSession, match: ColumnElement[bool]
    ) -> tuple[SimEsim, SimOrder]:
        # FOR UPDATE: on PostgreSQL concurrent changes to one eSIM queue up instead of one
        # overwriting the other (SQLite's write lock at BEGIN already serialises them).
        query = self._esims().where(match).with_for_update(of=SimEsim)
        row = (await session.execute(query)).one_or_none()
        if row is None:
            raise _refuse(LogicalReason.NOT_FOUND, "no such eSIM")
        return row

    async def _change(self, iccid: str, change: Callable[[SimEsim, datetime], None]) -> UsageReport:
        return await self._change_where(SimEsim.iccid == iccid, change)

    async def _change_ref(
        self, esim: EsimRef, change: Callable[[SimEsim, datetime], None]
    ) -> UsageReport:
        return await self._change_where(_matching(esim), change)

    async def _change_where(
        self, where: ColumnElement[bool], change: Callable[[SimEsim, datetime], None]
    ) -> UsageReport:
        async with unit_of_work(self._sessions) as session:
            esim, order = await self._locked_esim(session, where)
            now = self._clock.now()
            esim.settle(now)
            change(esim, now)
            return self._report(esim, order, now)

    def _coverage(self, package_code: str, country_code: str | None) -> Coverage:
        coverage = self._packages[package_code].coverage
        if country_code is None:
            return coverage[0]
        for country in coverage:
            if country.country_code == country_code.upper():
                return country
        raise _refuse(LogicalReason.NOT_ALLOWED, f"{country_code} is not covered by the package")

    def _sample(self, esim: SimEsim, at: datetime) -> None:
        """Remember that ``esim`` had used ``used_bytes`` from ``at`` on (only with a lag)."""
        if not self.reporting_lag:
            return
        samples = self._samples.get(esim.provider_esim_id)
        if samples is None:
            samples = self._samples[esim.provider_esim_id] = deque(maxlen=LAG_SAMPLES)
            while len(self._samples) > LAG_TRACKED:
                self._samples.popitem(last=False)
        self._samples.move_to_end(esim.provider_esim_id)
        if samples and samples[-1][1] == esim.used_bytes:
            return
        # Keep samples in time order even if another process's clock ran slightly behind ours.
        samples.append((max(at, samples[-1][0]) if samples else at, esim.used_bytes))

    def _lagged_usage(self, esim: SimEsim, now: datetime) -> tuple[int, datetime | None]:
        """Used bytes and last usage time as the upstream reports them ``reporting_lag`` late.

        The reported figure is the newest sample at least ``reporting_lag`` old. With no sample
        that old, it is the oldest one this process knows (the usage before the first change it
        saw), so a report never shows more than was really used, and never goes backwards.
        """
        samples = self._samples.get(esim.provider_esim_id)
        if not samples:
            return esim.used_bytes, esim.last_usage_at
        cutoff = now - self.reporting_lag
        at, used = samples[0]
        for sample_at, sample_used in samples:
            if sample_at > cutoff:
                break
            at, used = sample_at, sample_used
        if used >= esim.used_bytes:  # caught up (or a sample from a change never committed)
            return esim.used_bytes, esim.last_usage_at
        return used, (at if used else None)

    def _report(
        self, esim: SimEsim, order: SimOrder, now: datetime, *, lagged: bool = False
    ) -> UsageReport:
        used_bytes, last_usage_at = esim.used_bytes, esim.last_usage_at
        if lagged and self.reporting_lag:
            used_bytes, last_usage_at = self._lagged_usage(esim, now)
        network = None
        if esim.network_operator and esim.network_mcc and esim.network_mnc:
            network = NetworkSighting(
                operator=esim.network_operator,
                mcc=esim.network_mcc,
                mnc=esim.network_mnc,
                country_code=esim.network_country or "",
                connection_type=esim.network_type or "",
            )
        return UsageReport(
            esim=_ref(esim, order),
            used_bytes=used_bytes,
            total_bytes=esim.total_bytes,
            observed_at=now,
            # The simulator's own wire words (upper case), as an upstream would send them.
            raw_status={
                "profileState": esim.profile_state.upper(),
                "lineState": esim.line_state.upper(),
                "planState": esim.plan_state.upper(),
            },
            activated_at=esim.activated_at,
            expires_at=esim.expires_at,
            last_usage_at=last_usage_at,
            last_network=network,
            device_model=esim.device_model,
            device_imei=esim.device_imei,
        )

    # --- top-ups ----------------------------------------------------------------------------

    async def _topup(self, session: AsyncSession, reference: str) -> SimTopUp | None:
        query = select(SimTopUp).where(
            SimTopUp.account == self.account, SimTopUp.reference == reference
        )
        return (await session.scalars(query)).one_or_none()

    async def _apply_topup(self, session: AsyncSession, request: TopUpRequest) -> SimTopUp:
        """Apply a top-up to an eSIM, ``quantity`` times over.

        Data adds to the total (an unlimited plan stays unlimited). Days add to the eSIM's
        validity (its total duration, like eSIM Access ``totalDuration``); if the eSIM is already
        activated its expiry also moves: ``expires_at = max(expires_at, now) + days``, otherwise
        the longer validity simply counts from the first attach. A depleted plan is in use again.
        Top-ups are refused for a cancelled, deleted or expired eSIM.
        """
        esim, _ = await self._locked_esim(session, _matching(request.esim))
        package = self._packages.get(request.provider_code)
        if package is None or not package.is_topup:
            raise _refuse(LogicalReason.INVALID_PACKAGE, f"no top-up {request.provider_code!r}")
        if not _tops_up(package, self._packages[esim.package_code]):
            raise _refuse(
                LogicalReason.INVALID_PACKAGE,
                f"{package.provider_code} does not apply to {esim.package_code}",
            )
        if not 1 <= request.quantity <= MAX_QUANTITY:
            raise _refuse(LogicalReason.REJECTED, f"quantity must be 1 to {MAX_QUANTITY}")
        now = self._clock.now()
        esim.settle(now)
        if (
            esim.line_state == LineState.CANCELLED
            or esim.profile_state == ProfileState.DELETED
            or esim.plan_state in (PlanState.EXPIRED, PlanState.CANCELLED)
        ):
            raise _refuse(LogicalReason.NOT_ALLOWED, f"cannot top up: plan is {esim.plan_state}")

        if esim.total_bytes is not None and package.data_bytes is not None:
            esim.total_bytes += package.data_bytes * request.quantity
        days = package.validity_days * request.quantity
        esim.validity_days += days
        if esim.expires_at is not None:
            esim.expires_at = max(esim.expires_at, now) + timedelta(days=days)
        if esim.plan_state == PlanState.DEPLETED:
            esim.plan_state = PlanState.IN_USE

        done = SimTopUp(
            account=self.account,
            reference=request.reference,
            esim_id=esim.id,
            package_code=package.provider_code,
            quantity=request.quantity,
            unit_cost_e4=package.cost.amount_e4,
            currency=package.cost.currency,
            total_bytes_after=esim.total_bytes,
            expires_at_after=esim.expires_at,
            created_at=now,
        )
        session.add(done)
        await session.flush()
        return done


def _matching(ref: EsimRef) -> ColumnElement[bool]:
    """Find an eSIM by the provider's stable id, or by ICCID when the caller has no id."""
    if ref.provider_esim_id:
        return SimEsim.provider_esim_id == ref.provider_esim_id
    return SimEsim.iccid == ref.iccid


def _ref(esim: SimEsim, order: SimOrder) -> EsimRef:
    return EsimRef(esim.iccid, esim.provider_esim_id, order.provider_order_id)


def _profile(esim: SimEsim) -> EsimProfile:
    return EsimProfile(
        iccid=esim.iccid,
        provider_esim_id=esim.provider_esim_id,
        smdp_address=esim.smdp_address,
        matching_id=esim.matching_id,
        lpa=esim.lpa,
        confirmation_code_required=False,
    )


def _require_live(esim: SimEsim) -> None:
    """Refuse device events on an eSIM whose line or plan has ended."""
    if esim.line_state in (LineState.CANCELLED, LineState.SUSPENDED):
        raise _refuse(LogicalReason.NOT_ALLOWED, f"line is {esim.line_state}")
    if esim.plan_state in (PlanState.EXPIRED, PlanState.CANCELLED):
        raise _refuse(LogicalReason.NOT_ALLOWED, f"plan is {esim.plan_state}")


def _cancel_refusal(esim: SimEsim) -> str | None:
    """Why this eSIM cannot be cancelled; None when it can (never installed, attached or used)."""
    if esim.line_state == LineState.CANCELLED or esim.plan_state == PlanState.CANCELLED:
        return "already cancelled"
    if esim.profile_state != ProfileState.RELEASED:
        return "installed"
    if (
        esim.line_state != LineState.NOT_ACTIVE
        or esim.used_bytes > 0
        or esim.plan_state in (PlanState.IN_USE, PlanState.DEPLETED)
    ):
        return "in use"
    if esim.plan_state != PlanState.UNUSED:
        return esim.plan_state  # "expired"
    return None


def _tops_up(topup: ProviderPackage, base: ProviderPackage) -> bool:
    """Whether ``topup`` applies to an eSIM of package ``base`` (see ``ProviderPackage``)."""
    if topup.topup_for:
        return base.provider_code in topup.topup_for
    covered = {c.country_code for c in base.coverage}
    return base.rechargeable and all(c.country_code in covered for c in topup.coverage)


def _topup_result(done: SimTopUp) -> TopUpResult:
    return TopUpResult(
        reference=done.reference,
        state=PurchaseState.COMPLETED,
        unit_cost=Money(done.unit_cost_e4, done.currency),
        total_bytes=done.total_bytes_after,
        expires_at=done.expires_at_after,
    )
