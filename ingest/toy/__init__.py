"""The toy checkpoint suite: the embedded default that every command runs on offline."""
