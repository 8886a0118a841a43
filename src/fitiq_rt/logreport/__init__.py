"""The offline log product: `fitiq-rt logs report` and `timeline` over the server's JSON logs."""
