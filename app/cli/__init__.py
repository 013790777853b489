"""The `taskbeat` console script (`[project.scripts] taskbeat = "app.cli:main"`)."""

from app.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
