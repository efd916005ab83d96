"""`python -m hybridvision ...` is the `hybridvision` command (see `hybridvision.cli`)."""

from hybridvision.cli import main

main()
