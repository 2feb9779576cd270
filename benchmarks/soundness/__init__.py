"""Soundness benchmarks: networks with planted, hidden counterexamples and their safe twins
(issue 14; see benchmarks/soundness/README.md)."""
