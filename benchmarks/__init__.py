"""Speed benchmarks; run each as `python -m benchmarks.<name> [--json] [--quick]`."""
