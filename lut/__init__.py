"""Pre-optimised branching points (algorithms.md section 6; docs/branching_points.md).

Only the look-up side is imported here (``lut.table`` is a leaf module); the offline optimiser
``lut.build`` imports ``bounds`` and is imported explicitly where needed.
"""

if __name__ != "genbab.lut":     # the repository root on sys.path makes the old name findable
    raise ImportError(f"{__name__!r} is not an import name: genbab installs one namespace, "
                      "import genbab.lut instead (see docs/architecture.md)")

from genbab.lut.table import (BranchPoints, Consumer, StaleTableError, TableError, canonical_key,
                              signature_key)

__all__ = ["BranchPoints", "Consumer", "StaleTableError", "TableError", "canonical_key",
           "signature_key"]
