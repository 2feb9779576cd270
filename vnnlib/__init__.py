"""VNN-LIB 1.0 properties: parsing (``parse_vnnlib``) and the normal form (``Property``)."""
from vnnlib.property import Clause, Disjunct, Property

__all__ = ["Clause", "Disjunct", "Property", "parse_vnnlib"]


def __getattr__(name: str):
    if name == "parse_vnnlib":
        from vnnlib.parser import parse_vnnlib
        return parse_vnnlib
    raise AttributeError(name)
