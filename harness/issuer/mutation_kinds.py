"""Every mutation operation, by kind: ``header`` changes header members and ``claims`` claim values and types
(re-signed, :mod:`.mutation_content`), ``signature`` edits the signature bytes and ``encoding`` the base64 and
segments of a valid token (:mod:`.mutation_bytes`).
"""

from __future__ import annotations

from typing import Final

from .mutation_bytes import OPS as BYTE_OPS
from .mutation_content import OPS as CONTENT_OPS
from .mutation_op import Op

__all__ = ["KINDS", "OPS"]

# Sampling draws from OPS in this order (header, claims, signature, encoding): changing it changes every seed's plans.
# So does a new string literal in these modules (a name in __all__ too): hypothesis draws text from the literals of
# local modules. Hence each module exports only OPS, and a kind's decorator stays private.
OPS: Final[dict[str, Op]] = {op.name: op for op in (*CONTENT_OPS, *BYTE_OPS)}
KINDS: Final = tuple(dict.fromkeys(op.kind for op in OPS.values()))
