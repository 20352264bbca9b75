"""The connector contract kit now ships installed, as `connectors.testing` (operators' own
connector packages use it too); kept here for the tests that import it from this path."""

from connectors.testing import ConnectorContract

__all__ = ["ConnectorContract"]
