"""`python -m xdscp` runs the `xdscp` command."""

from xdscp.cli import main

main()
