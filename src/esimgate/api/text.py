"""Constraints shared by free-text parameters."""

# PostgreSQL text cannot hold U+0000: a NUL reaching a query fails it (a 500). Parameters that
# reach the database refuse it at validation (400 INVALID_PARAMETER), and the schema says so.
NO_NUL = r"^[^\x00]*$"
