"""The error type of the benchmark harness."""


class BenchError(Exception):
    """A step of the benchmark failed; the message names the step and what to do about it."""
