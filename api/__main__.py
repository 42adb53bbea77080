"""`python -m api` = the `spanlink` command."""

from api.cli import main

main()
