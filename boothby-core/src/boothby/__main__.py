"""Allow ``python -m boothby``."""

from .cli import main

main()
