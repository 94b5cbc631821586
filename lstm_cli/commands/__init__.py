"""One module per subcommand; each has `run(cfg)`, called by `lstm_cli.cli.apps`."""
