"""eSIM records: install payloads, status, usage."""
