"""What genbab can do with each op of a model: the truth behind ``genbab check-model``.

Every ONNX node ends up at one of four levels, found by running the real pipeline (the
loader, then the bound engine's rewrite and classification) rather than by consulting a
list, so a report can never promise what ``verify`` cannot do:

* ``verify``: on the perturbed path and fully supported (loader, forward, sound bounds,
  branch-and-bound);
* ``folded``: computed at load time from constants (shape arithmetic): it never reaches the
  verifier (no-ops on the perturbed path, such as ``Identity``, count as ``verify``);
* ``attack only``: evaluated (so attacks run and counterexamples are confirmed), but with no
  sound relaxation, so ``verify`` can answer ``sat`` and never ``unsat``;
* ``unsupported``: the loader has no rule for it on the perturbed path; ``verify`` answers
  ``error``.

Nodes are traced by name: a node the loader or the rewrite creates for an ONNX node ``n`` is
named ``n`` or ``n/<role>`` (unnamed ONNX nodes get unique names first).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import onnx

from genbab.bounds.plan import unsupported_ops
from genbab.verifier.errors import ModelError, UnsupportedOpError
from genbab.verifier.onnx_loader import load_model, read_model

VERIFY, FOLDED, ATTACK, UNSUPPORTED = "verify", "folded", "attack only", "unsupported"
UNCHECKED = "not checked"   # the model does not load, so the rest of the pipeline never ran
_RANK = {FOLDED: 0, UNCHECKED: 1, VERIFY: 1, ATTACK: 2, UNSUPPORTED: 3}


@dataclass(frozen=True)
class OpSupport:
    """One ONNX op type of a model: how many nodes, and the worst level among them."""

    op_type: str
    count: int
    level: str
    detail: str


@dataclass(frozen=True)
class SupportReport:
    """Per op type (sorted), the model's overall level (the worst op's; ``folded`` ops do not
    count), and what ``verify`` will therefore do."""

    ops: tuple[OpSupport, ...]
    level: str

    @property
    def summary(self) -> str:
        return {VERIFY: "verify will run: every op is supported by bounds and branch-and-bound",
                ATTACK: "attack only: verify can find and confirm counterexamples but never "
                        "prove the property (ops without a sound relaxation)",
                UNSUPPORTED: "unsupported: verify will answer error"}[self.level]


_DETAIL = {VERIFY: "loader, forward, bounds and branching",
           FOLDED: "computed from constants at load time",
           ATTACK: "evaluated, but no sound relaxation on the perturbed path",
           UNSUPPORTED: "no loader rule for it on the perturbed path",
           UNCHECKED: "not checked: another op stops the model from loading"}


def support_report(model: str | Path | onnx.ModelProto) -> SupportReport:
    """The support level of every op of ``model``.  Raises ``ModelError`` for a model that
    cannot be read or is malformed for reasons other than its ops."""
    proto = _named(read_model(model))
    where = str(model) if not isinstance(model, onnx.ModelProto) else None
    labels = {n.name: _label(n) for n in proto.graph.node}
    levels: dict[str, str] = {}
    try:
        graph = load_model(proto)
    except UnsupportedOpError as err:
        bad = {name for names in err.unsupported.values() for name in names}
        levels = {name: UNSUPPORTED if name in bad else UNCHECKED for name in labels}
        return _report(labels, levels)
    except ModelError as err:
        raise ModelError(where, err.problem) from err
    loaded = _origins([n.name for n in graph.nodes], labels) | _aliases(proto)
    attack_only = _origins([name for names in unsupported_ops(graph).values() for name in names],
                           labels)
    for name in labels:
        if name in attack_only:
            levels[name] = ATTACK
        elif name in loaded:
            levels[name] = VERIFY
        else:
            levels[name] = FOLDED
    return _report(labels, levels)


def _named(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy in which every node has a unique name (the loader names unnamed ones itself,
    which the report could not trace)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    taken = {n.name for n in copy.graph.node if n.name}
    for i, node in enumerate(copy.graph.node):
        if not node.name:
            name, k = f"{node.op_type}#{i}", 0
            while name in taken:
                k += 1
                name = f"{node.op_type}#{i}.{k}"
            node.name = name
            taken.add(name)
    return copy


_STATIC = frozenset({"Shape", "Size"})   # their outputs depend on shapes only


def _aliases(proto: onnx.ModelProto) -> set[str]:
    """No-op nodes on the perturbed path (Identity, Dropout, float casts), which the loader
    removes: they are supported, not folded."""
    perturbed = {i.name for i in proto.graph.input}
    perturbed -= {init.name for init in proto.graph.initializer}
    found = set()
    for node in proto.graph.node:      # a valid ONNX graph lists nodes in topological order
        if node.op_type in _STATIC or not perturbed.intersection(node.input):
            continue
        perturbed.update(node.output)
        if node.op_type in ("Identity", "Dropout", "Cast"):
            found.add(node.name)
    return found


def _label(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def _origins(names: list[str], onnx_names: dict[str, str]) -> set[str]:
    """The ONNX nodes the given derived node names come from (longest name prefix)."""
    found = set()
    for name in names:
        while name not in onnx_names and "/" in name:
            name = name.rsplit("/", 1)[0]
        if name in onnx_names:
            found.add(name)
    return found


def _report(labels: dict[str, str], levels: dict[str, str]) -> SupportReport:
    counts = Counter(labels.values())
    worst: dict[str, str] = {}
    for name, op in labels.items():
        level = levels[name]
        if op not in worst or _RANK[level] > _RANK[worst[op]]:
            worst[op] = level
    ops = tuple(OpSupport(op, counts[op], worst[op], _DETAIL[worst[op]]) for op in sorted(worst))
    overall = max((o.level for o in ops if o.level not in (FOLDED, UNCHECKED)), key=_RANK.get,
                  default=VERIFY)
    return SupportReport(ops, overall)
