"""Pre-optimised branching points (algorithms.md section 6; docs/branching_points.md).

Only the look-up side is imported here (``lut.table`` is a leaf module); the offline optimiser
``lut.build`` imports ``bounds`` and is imported explicitly where needed.
"""
from lut.table import (BranchPoints, Consumer, StaleTableError, TableError, canonical_key,
                       signature_key)

__all__ = ["BranchPoints", "Consumer", "StaleTableError", "TableError", "canonical_key",
           "signature_key"]
