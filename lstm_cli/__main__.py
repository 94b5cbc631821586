"""`python -m lstm_cli` is the same as the `lstm-train` console script."""

from lstm_cli.cli.main import main

main()
