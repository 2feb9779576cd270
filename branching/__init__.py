"""Branch-and-bound: input splitting (``bab``), neuron splitting (``neuron_bab``), the
branching heuristics (``bbps``, ``heuristics``) and the falsifying attack (``attack``)."""

if __name__ != "genbab.branching":     # the repository root on sys.path makes the old name findable
    raise ImportError(f"{__name__!r} is not an import name: genbab installs one namespace, "
                      "import genbab.branching instead (see docs/architecture.md)")

