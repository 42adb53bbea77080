"""The `spanlink` command line."""

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="spanlink: multilingual entity extraction, linking and search.")


def main() -> None:
    app()
