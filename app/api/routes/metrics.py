"""/metrics: this replica's figures in the Prometheus text format."""

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import ContextDep
from app.api.errors import error_responses
from app.service.dashboard import Dashboard

router = APIRouter(tags=["meta"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
        **error_responses(),
    },
)
async def metrics(request: Request, context: ContextDep) -> Response:
    """Every replica exposes its own: scrape each one (see the README's metrics table). It
    answers while the database or Redis is away, with the gauges they feed left as they were."""
    dashboard: Dashboard = request.app.state.dashboard
    replica_metrics = context.runner.metrics
    await dashboard.refresh_gauges(replica_metrics)
    body = generate_latest(replica_metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
