"""Kavenegar (کاوه‌نگار) SMS: received SMS in over a secret webhook URL, replies out through its
REST API."""

from connectors.kavenegar.connector import KavenegarConnector, KavenegarSettings

__all__ = ["KavenegarConnector", "KavenegarSettings"]
