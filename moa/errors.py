"""The one error a user's input can cause before any call: its own module, so that every layer
(catalogue, providers, client, the CLI) can raise it without importing each other."""


class ConfigError(ValueError):
    """Bad user input found before any call is made; its message is one line for the user."""
