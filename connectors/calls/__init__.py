"""Phone call logs (Twilio Voice status callbacks and a signed generic PBX JSON form)."""

from connectors.calls.connector import CallsConnector, CallsSettings

__all__ = ["CallsConnector", "CallsSettings"]
