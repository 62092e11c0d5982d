"""The mock identity provider: a fake Keycloak realm with key rotation, fetch counting, faults and bad tokens.

Short public surface: :class:`Issuer` (the server), :class:`KeySet` (keys and rotation) and
:class:`TokenFactory` (Keycloak-shaped tokens). The bad-token catalogue lives in
``harness.issuer.catalogue``, the hypothesis mutations in ``harness.issuer.mutations``, pytest fixture
factories in ``harness.issuer.fixtures``, the respx helper in ``harness.issuer.respx_routes``.
"""

from __future__ import annotations

from .keys import KeySet
from .server import Issuer
from .tokens import TokenFactory

__all__ = ["Issuer", "KeySet", "TokenFactory"]
