"""API keys, HMAC verification, replay guard, bearer tokens and rate limiting."""
