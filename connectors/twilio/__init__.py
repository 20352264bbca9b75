"""Twilio SMS and WhatsApp: signed webhooks in, the Messages API out."""

from connectors.twilio.connector import TwilioConnector, TwilioSettings

__all__ = ["TwilioConnector", "TwilioSettings"]
