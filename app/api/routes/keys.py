"""/v1/keys: API keys, for admins (the access rule is in app.api.auth)."""

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.deps import KeysDep, PrincipalDep
from app.api.errors import error_responses
from app.api.json_body import StrictJSONRoute
from app.domain.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyPage

router = APIRouter(prefix="/v1/keys", tags=["keys"], route_class=StrictJSONRoute)
KeyIdPath = Annotated[str, Path(description="the id `POST /v1/keys` gave")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=error_responses(422, 503),
)
async def create_key(body: ApiKeyCreate, keys: KeysDep, who: PrincipalDep) -> ApiKeyCreated:
    """Creates a key; the answer holds its secret, shown this once (only a hash is kept)."""
    return await keys.create(body, by=who)


@router.get("", response_model=ApiKeyPage, responses=error_responses(503))
async def list_keys(keys: KeysDep) -> ApiKeyPage:
    return ApiKeyPage(items=await keys.list())


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(404, 422, 503),
)
async def revoke_key(key_id: KeyIdPath, keys: KeysDep, who: PrincipalDep) -> Response:
    """Revokes the key: within a second no replica accepts it any more."""
    await keys.revoke(key_id, by=who)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
