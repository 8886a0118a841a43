"""One module per scenario: its parameters, the client worker, and the parent's run()."""
