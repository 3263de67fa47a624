"""The prepaid wallet: an append-only ledger in integer minor units."""
