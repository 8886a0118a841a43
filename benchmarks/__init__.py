"""fitiq_rt's benchmark harness: `python -m benchmarks SCENARIO [--server CMD | --url URL]`.

Scenarios churn, idle, e2e, fanout, logs and compare; see benchmarks/README.md.
"""
