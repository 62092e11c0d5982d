"""makrx-contracts harness: the pytest plugin, the fake Keycloak issuer, services and the target launcher."""

from .contract import MUST, SHOULD, ContractViolation, expect, violation
from .errors import ConfigError, HarnessError, IssuerError, ServiceError, TargetError

__all__ = [
    "MUST",
    "SHOULD",
    "ConfigError",
    "ContractViolation",
    "HarnessError",
    "IssuerError",
    "ServiceError",
    "TargetError",
    "expect",
    "violation",
]
__version__ = "0.1.0"
