"""The core layer: the graph IR (``graph``), the ONNX loader (``onnx_*``), forward evaluation
(``forward``) and the types every layer shares (``errors``, ``options``, ``result``).

It imports nothing else of genbab; the public entry point is ``genbab`` itself
(``from genbab import verify``).
"""

if __name__ != "genbab.verifier":     # the repository root on sys.path makes the old name findable
    raise ImportError(f"{__name__!r} is not an import name: genbab installs one namespace, "
                      "import genbab.verifier instead (see docs/architecture.md)")

