"""Configuration: one ``Settings`` object read from the environment (and ``.env``).

Nothing else in the code base reads ``os.environ`` for configuration. Timing values
may be lowered for tests and bank-led commercial listings; money rules are not settings.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service, with the law's defaults where the law sets one."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    data_dir: Path = Field(default=Path("./var"), alias="MARKET_DATA_DIR")
    secret_key: str | None = Field(default=None, alias="MARKET_SECRET_KEY")
    min_notice_seconds: int = Field(default=30 * 86400, alias="MARKET_MIN_NOTICE_SECONDS", ge=0)
    min_reauction_notice_seconds: int = Field(
        default=15 * 86400, alias="MARKET_MIN_REAUCTION_NOTICE_SECONDS", ge=0
    )
    min_auction_seconds: int = Field(default=86400, alias="MARKET_MIN_AUCTION_SECONDS", ge=1)
    extension_seconds: int = Field(default=300, alias="MARKET_EXTENSION_SECONDS", ge=1)
    min_extension_seconds: int = Field(default=300, alias="MARKET_MIN_EXTENSION_SECONDS", ge=1)
    balance_due_days: int = Field(default=10, alias="MARKET_BALANCE_DUE_DAYS", ge=1)
    platform_fee_bp: int = Field(default=0, alias="MARKET_PLATFORM_FEE_BP", ge=0, le=10000)
    buyer_commission: Literal["off", "slices"] = Field(default="off", alias="MARKET_BUYER_COMMISSION")
    session_ttl_seconds: int = Field(default=12 * 3600, alias="MARKET_SESSION_TTL_SECONDS", ge=60)
    token_ttl_seconds: int = Field(default=30 * 86400, alias="MARKET_TOKEN_TTL_SECONDS", ge=60)
    login_max_failures: int = Field(default=5, alias="MARKET_LOGIN_MAX_FAILURES", ge=1)
    login_window_seconds: int = Field(default=900, alias="MARKET_LOGIN_WINDOW_SECONDS", ge=1)
    allowed_origins: str = Field(default="", alias="MARKET_ALLOWED_ORIGINS")
    cookie_secure: bool | None = Field(default=None, alias="MARKET_COOKIE_SECURE")
    close_grace_ms: int = Field(default=500, alias="MARKET_CLOSE_GRACE_MS", ge=0, le=60_000)
    closer_workers: int = Field(default=4, alias="MARKET_CLOSER_WORKERS", ge=0, le=64)
    ws_max_per_user: int = Field(default=10, alias="MARKET_WS_MAX_PER_USER", ge=1)
    ws_rate_per_second: float = Field(default=10.0, alias="MARKET_WS_RATE", gt=0)
    db_pool_size: int = Field(default=10, alias="MARKET_DB_POOL_SIZE", ge=1)
    log_level: str = Field(default="info", alias="MARKET_LOG_LEVEL")
    demo: bool = Field(default=False, alias="MARKET_DEMO")

    @property
    def pgdata(self) -> Path:
        return self.data_dir.resolve() / "pgdata"

    def origin_allow_list(self) -> set[str]:
        return {o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()}

    def resolved_secret_key(self) -> str:
        """The signing key: from the environment, or generated once into the data directory."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir.resolve() / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".secret_key.{secrets.token_hex(8)}")
            tmp.write_text(secrets.token_urlsafe(48))
            tmp.chmod(0o600)
            try:  # link() refuses an existing target: two instances starting together agree on one key
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip()


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """The process-wide settings (cached; tests build their own ``Settings``)."""
    return Settings()
