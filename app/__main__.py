"""`python -m app`, and the entry point of the one-file build (`make dist`)."""

from app.cli import main

main()
