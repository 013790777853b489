"""Each API key's limit of unfinished tasks, enforced where its creates are inserted.

A count read before the insert would let creates racing on several replicas all pass it;
here the count and the inserts share one transaction, and on PostgreSQL an advisory lock
per key (taken in key order) makes concurrent transactions for one key count one after the
other. SQLite has one writer at a time, so its count is exact already.
"""

from collections.abc import Sequence

from sqlalchemy import Connection, func, select

from app.store.tables import UNFINISHED_VALUES, tasks

Limited = tuple[int, str, int]  # (position in the batch, api key id, its max_unfinished)


def over_key_limits(conn: Connection, limited: Sequence[Limited]) -> dict[int, int]:
    """position -> unfinished tasks its key already holds, for each create that would take
    the key past its limit (counting the batch's earlier creates of that key)."""
    if not limited:
        return {}
    key_ids = sorted({key_id for _, key_id, _ in limited})
    if conn.dialect.name == "postgresql":
        for key_id in key_ids:  # key order: two batches never wait on each other in a cycle
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key_id, 0))))
    counts = (
        select(tasks.c.api_key_id, func.count())
        .where(tasks.c.api_key_id.in_(key_ids), tasks.c.status.in_(UNFINISHED_VALUES))
        .group_by(tasks.c.api_key_id)
    )
    held = {key_id: int(count) for key_id, count in conn.execute(counts).all()}
    refused = {}
    for position, key_id, max_unfinished in limited:
        count = held.get(key_id, 0)
        if count >= max_unfinished:
            refused[position] = count
        else:
            held[key_id] = count + 1
    return refused
