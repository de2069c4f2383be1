"""/v1/whoami: lets an integrator check who the service takes a key or token for, and its scopes.
Keys themselves are managed with the ``dmask keys`` CLI (an operator action, audited), not over
the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from services.auth.deps import authenticate
from services.auth.schemas import WhoAmI
from services.auth.service import Principal

router = APIRouter(prefix="/v1", tags=["auth"])


@router.get("/whoami", response_model=WhoAmI)
def whoami(principal: Annotated[Principal, Depends(authenticate)]) -> WhoAmI:
    actor = principal.audit_actor
    return WhoAmI(
        kind=actor.kind,
        subject=actor.subject,
        name=actor.name,
        issuer=actor.issuer,
        client_id=principal.client_id,
        key_id=principal.key_id,
        scopes=sorted(principal.scopes),
    )
