"""The `[telegram]` table (or `[[telegram]]` instances): one bot on Telegram or on Bale."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from connectors.base import ConnectorSettings

# Bale (بله) serves a copy of the Bot API under its own host; only the URLs differ.
DEFAULT_URLS: dict[str, tuple[str, str]] = {
    "telegram": ("https://api.telegram.org/bot", "https://api.telegram.org/file/bot"),
    "bale": ("https://tapi.bale.ai/bot", "https://tapi.bale.ai/file/bot"),
}
# Where a bot's deep links lead, before its username (`<base><bot>?start=...`).
DEEP_LINK_BASES = {"telegram": "https://t.me/", "bale": "https://ble.ir/"}


class TelegramSettings(ConnectorSettings):
    token_env: str = "PARVANDEH_TELEGRAM_TOKEN"
    channel: Literal["telegram", "bale"] = "telegram"
    # Empty: the channel's public Bot API. The token is appended (or replaces "{token}").
    base_url: str = ""
    base_file_url: str = ""
    mode: Literal["polling", "webhook"] = "polling"
    webhook_secret_env: str = ""
    poll_timeout_seconds: int = Field(30, ge=0, le=600)
    request_timeout_seconds: float = Field(10.0, gt=0)
    # Backoff after a network error or while the store is unavailable: doubles up to the max.
    retry_initial_seconds: float = Field(1.0, gt=0)
    retry_max_seconds: float = Field(60.0, gt=0)
    download_files: bool = True

    @model_validator(mode="before")
    @classmethod
    def _channel_urls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            base, files = DEFAULT_URLS.get(str(data.get("channel", "telegram")), DEFAULT_URLS["telegram"])
            data = {**data, "base_url": data.get("base_url") or base,
                    "base_file_url": data.get("base_file_url") or files}
        return data

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> TelegramSettings:
        if self.mode == "webhook" and not self.webhook_secret_env:
            raise ValueError(
                "mode = 'webhook' needs webhook_secret_env: the environment variable holding the secret "
                "the Bot API sends in X-Telegram-Bot-Api-Secret-Token"
            )
        return self
