"""Transports: thin adapters between a byte stream and the MCP server (framing, auth, health)."""
