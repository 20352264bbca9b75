"""Configuration: one TOML file plus environment overrides, validated at start-up.

Nothing else in Parvandeh reads files or environment variables for settings. Errors name the
key, the bad value and what was expected.
"""

from config.loader import ConfigError, Settings, load_settings, DEFAULT_CONFIG_PATH

__all__ = ["ConfigError", "Settings", "load_settings", "DEFAULT_CONFIG_PATH"]
