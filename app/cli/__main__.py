"""`python -m app.cli`: the console script without its installed launcher."""

from app.cli.main import main

main()
