"""On-demand benchmarks (never run by the test suite's timing): see benchmarks/README.md."""
