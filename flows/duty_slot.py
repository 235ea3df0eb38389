"""One run per site and duty at a time: the duty's slot, a Prefect global concurrency limit
`ebops:<site>:<duty>` held for the body of every run (flows/<duty>.py), so two runs of one duty at
one site never read the same saved state or race for the evidence chain."""
from __future__ import annotations

import contextvars
import threading
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import Iterator

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.context import ConcurrencyContext
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.runtime import flow_run

from flows.cli_interrupt import also_on_stop

# How long a run waits for the other run of the same duty at the same site before it gives up: the
# longest a duty is expected to take at one site (a backup-restore verification of a large hospital
# database, about an hour, with room). Past it the other run is taken to be hung, and this one ends
# Failed before it reads anything, so the evidence chain and the saved log positions stay as they are.
DUTY_SLOT_WAIT_S = 2 * 3600
# A run still without its slot after this long says once that it waits (an uncontended slot takes
# milliseconds).
WAIT_NOTICE_AFTER_S = 2.0
RELEASE_ON_STOP_S = 3.0  # Ctrl-C ends the process at once: the slot's release may take this long



class DutyBusy(RuntimeError):
    """Another run of the same duty at the same site held its slot past DUTY_SLOT_WAIT_S."""


def slot_name(site: str, duty: str) -> str:
    # A Prefect name may not hold "/": ebops:<site>:<duty>, as the Prefect UI lists it.
    return f"ebops:{site}:{duty}"


def limit_of(name: str, limit: int = 1):
    """The global concurrency limit `name`, created with `limit` if missing (without it Prefect
    only warns and runs unlimited). One an operator changed (disabled, raised) is left as it is."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
        except ObjectAlreadyExists:  # another run created it meanwhile
            pass
        return client.read_global_concurrency_limit_by_name(name)


@contextmanager
def duty_slot(site: str, duty: str, wait_s: float | None = None) -> Iterator[None]:
    """Hold the one slot of `duty` at `site` (a Prefect global concurrency limit) for the block.

    Two runs of one duty at one site at once would read the same saved state (log positions,
    standing findings) and race for the evidence chain's next sequence; the second waits here for
    the first instead, at most `wait_s` (DUTY_SLOT_WAIT_S), then ends with DutyBusy. The slot is a
    lease the run renews: on a Prefect server a run killed hard frees it within the lease's 300 s.
    The temporary server of a run without one never expires leases: Ctrl-C gives the slot back
    (below); after a SIGKILL it stays taken until freed by hand (DutyBusy's hint says how).
    """
    name = slot_name(site, duty)
    wait_s = DUTY_SLOT_WAIT_S if wait_s is None else wait_s
    limit_of(name)
    logger = get_run_logger()
    got = threading.Event()

    def say_it_waits() -> None:
        # Said by a timer, not by reading the limit first: two runs started together both see it free.
        limit = limit_of(name)
        if not got.is_set() and limit.active and limit.active_slots >= limit.limit:
            logger.warning("another run of %s at %s is going on: this run waits for it to end "
                           "(at most %d s, concurrency limit %s; hint: if no other run is going on (one killed "
                           "hard), free the slot: prefect global-concurrency-limit update %s --active-slots 0)",
                           duty, site, wait_s, name, name)

    notice = threading.Timer(WAIT_NOTICE_AFTER_S, contextvars.copy_context().run, args=(say_it_waits,))
    notice.daemon = True
    holder = ConcurrencyLeaseHolder(type="flow_run", id=flow_run.id) if flow_run.id else None
    with ExitStack() as held:
        notice.start()
        try:
            # A renewal that fails once (a busy server) must not stop a run half-way: the evidence
            # chain's own lock and sequence claim still guard the bundle.
            held.enter_context(concurrency(name, occupy=1, timeout_seconds=wait_s, holder=holder,
                                           raise_on_lease_renewal_failure=False))
        except TimeoutError:
            raise DutyBusy(f"{duty} {site}: another run of this duty at this site held concurrency limit {name} "
                           f"for more than {wait_s:.0f} s; this run did nothing (no evidence, state unchanged) "
                           f"(hint: let the other run end, or if none is running (a run killed hard), free "
                           f"the slot: prefect global-concurrency-limit update {name} --active-slots 0)") from None
        finally:
            got.set()
            notice.cancel()
        # Ctrl-C ends `ebops` with os._exit, past this block's release. A Prefect server would free
        # the slot when its lease runs out, but the temporary one is stopped with us and never
        # expires leases, while its database keeps the slot taken: give it back before it stops.
        ctx = ConcurrencyContext.get()
        if ctx is not None and ctx.cleanup_lease_ids:
            held.enter_context(also_on_stop(partial(_release_on_stop, ctx.cleanup_lease_ids[-1])))
        yield


def _release_on_stop(lease_id) -> None:
    def release() -> None:
        try:
            with get_client(sync_client=True) as client:
                client.release_concurrency_slots_with_lease(lease_id)
        except Exception:  # noqa: BLE001 - the exit must not wait for a server that is gone
            pass

    t = threading.Thread(target=contextvars.copy_context().run, args=(release,), daemon=True)
    t.start()
    t.join(RELEASE_ON_STOP_S)
