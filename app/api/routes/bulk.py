"""/v1/bulk: cancel or re-run every task a filter matches (a client key: its own only)."""

from fastapi import APIRouter

from app.api.deps import BulkDep, PrincipalDep
from app.api.errors import error_responses
from app.api.json_body import StrictJSONRoute
from app.domain.models import BulkAnswer, BulkFilter

router = APIRouter(prefix="/v1/bulk", tags=["bulk"], route_class=StrictJSONRoute)


@router.post("/cancel", response_model=BulkAnswer, responses=error_responses(422, 503))
async def bulk_cancel(where: BulkFilter, bulk: BulkDep, who: PrincipalDep) -> BulkAnswer:
    """Cancels the unfinished tasks matching the filter whose cancel was not asked yet: the
    pending ones end now, the running ones stop on whichever replica runs them. `matched`
    counts the tasks found, `changed` those this call cancelled (a repeat changes none)."""
    return await bulk.cancel(where, visible_to=who.task_scope, api_key_id=who.key_id)


@router.post("/retry", response_model=BulkAnswer, responses=error_responses(422, 503))
async def bulk_retry(where: BulkFilter, bulk: BulkDep, who: PrincipalDep) -> BulkAnswer:
    """Runs the failed, cancelled and timed-out tasks matching the filter again, each as its
    next attempt. `matched` counts the tasks found, `changed` those back in the queue."""
    return await bulk.retry(where, visible_to=who.task_scope, api_key_id=who.key_id)
