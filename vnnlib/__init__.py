"""VNN-LIB 1.0 properties: parsing (``parse_vnnlib``) and the normal form (``Property``)."""

if __name__ != "genbab.vnnlib":     # the repository root on sys.path makes the old name findable
    raise ImportError(f"{__name__!r} is not an import name: genbab installs one namespace, "
                      "import genbab.vnnlib instead (see docs/architecture.md)")

from genbab.vnnlib.property import Clause, Disjunct, Property

__all__ = ["Clause", "Disjunct", "Property", "parse_vnnlib"]


def __getattr__(name: str):
    if name == "parse_vnnlib":
        from genbab.vnnlib.parser import parse_vnnlib
        return parse_vnnlib
    raise AttributeError(name)
