"""The test kit: the loopback fake server and the CLI helpers, shared by tests/ and scripts/."""
