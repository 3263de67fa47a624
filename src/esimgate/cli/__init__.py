"""The `esimgate` command line (Typer + Rich)."""

from esimgate.cli.main import app


def main() -> None:
    app()


__all__ = ["app", "main"]
