"""ACOPF case studies: the grids behind the ml4acopf models and their engineering properties
(docs/acopf_properties.md).  Import from the modules: ``benchmarks.acopf.grid``,
``benchmarks.acopf.properties``, ``benchmarks.acopf.vnnlib_writer`` and
``benchmarks.acopf.ml4acopf``."""
