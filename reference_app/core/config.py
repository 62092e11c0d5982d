"""Service settings, read once from the environment (and an optional `.env`) into `settings`."""

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Local front-end dev servers (Next.js apps on 3000/3001, Vite on 5173).
DEFAULT_CORS_ORIGINS = [
    "http://localhost:3000",
    "http://localhost:3001",
    "http://localhost:5173",
    "http://127.0.0.1:3000",
]


class Settings(BaseSettings):
    """Runtime options; the variable names are the MakrX backend contract."""

    model_config = SettingsConfigDict(
        env_file=Path(__file__).resolve().parent.parent / ".env", extra="ignore"
    )

    environment: Literal["development", "test", "staging", "production"] = "development"
    port: int = 8000
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    keycloak_url: str = "http://localhost:8081"
    keycloak_realm: str = "makrx"
    keycloak_client_id: str = "makrx-reference-api"
    keycloak_issuer: str = ""  # empty: derived from KEYCLOAK_URL and KEYCLOAK_REALM
    keycloak_verify_aud: bool = True
    keycloak_use_jwks: bool = True
    keycloak_pk_ttl_seconds: int = Field(default=300, ge=1)

    database_url: str = "postgresql://makrx:changethis@localhost:5432/makrx_reference"
    redis_url: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = DEFAULT_CORS_ORIGINS
    trust_proxy: bool = False
    rate_limit_per_minute: int = Field(default=100, ge=1)
    enable_metrics: bool = False

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _use_psycopg3(cls, value: str) -> str:
        # Platforms hand out plain postgres:// URLs; SQLAlchemy needs the driver named.
        scheme, sep, rest = value.partition("://")
        if scheme in ("postgres", "postgresql"):
            return f"postgresql+psycopg{sep}{rest}"
        return value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_redis_is_unset(cls, value: object) -> object:
        return value or None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, value: list[str]) -> list[str]:
        # Credentials are allowed, and browsers refuse `*` with credentials: list origins.
        if "*" in value:
            raise ValueError("CORS_ORIGINS must list origins; '*' is not allowed with credentials")
        return value

    @model_validator(mode="after")
    def _derive_and_check(self) -> Self:
        if not self.keycloak_issuer:
            self.keycloak_issuer = f"{self.keycloak_url.rstrip('/')}/realms/{self.keycloak_realm}"
        if not self.keycloak_use_jwks:
            # A pinned key cannot follow Keycloak's key rotation; JWKS is the only supported mode.
            raise ValueError("KEYCLOAK_USE_JWKS=false is not supported by this service")
        if self.environment in ("staging", "production") and "changethis" in self.database_url:
            raise ValueError("DATABASE_URL still holds the placeholder password 'changethis'")
        return self


settings = Settings()
