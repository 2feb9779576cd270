"""A model zoo of our own: small networks trained on CPU on data that needs no download, with
L-inf robustness properties (``python -m benchmarks.zoo.build``; see README.md)."""
