"""Fuzzing the front door: mutated VNN-LIB files and ONNX models (issue 14, item 4).

    python -m benchmarks.soundness.fuzz [--count N] [--cli K] [--seed S]

Each mutant is one small, seeded change of a valid input: a token dropped, duplicated or
replaced by NaN / inf / a huge number, a truncated file, ten thousand nested ``and``s, random
bytes; for ONNX a node dropped or duplicated, a wrong input shape, a bad attribute, NaN or
inf weights, a reshaped or truncated initializer, a dangling edge, an unknown op, a bogus
opset.  The rules (``check_vnnlib``, ``check_onnx``, ``check_cli``):

* only ``VerifierError`` (the documented error family) may escape the parser and the loader;
  anything else is a crash;
* a model the loader accepts must be one onnxruntime accepts too, with the same outputs on a
  random input (else genbab would give verdicts on a model the official checker cannot run;
  a valid model for which this onnxruntime lacks a kernel, such as Gemm at opset 1, is not a
  finding: its semantics are ONNX's, it only cannot be confirmed here);
* through the CLI (``--cli``, a subprocess with a timeout): a result word out of
  ``sat unsat timeout unknown error`` within timeout + 2 s, no traceback, and ``sat`` / ``unsat``
  only for inputs that loaded and agreed with onnxruntime.

The tests (``tests/property/test_fuzz.py``) drive the same functions with hypothesis.
"""
from __future__ import annotations

import argparse
import copy
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from genbab.verifier.errors import VerifierError

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "benchmarks" / "demo" / "models"
SEEDS = [("sigmoid_mlp", "sigmoid_mlp_robust"), ("sin_tanh", "sin_tanh_bound_high"),
         ("relu_mlp", "relu_mlp_boundary")]
WORDS = ("sat", "unsat", "timeout", "unknown", "error")


@dataclass(frozen=True)
class Finding:
    kind: str       # the mutation
    problem: str    # what went wrong


# -- VNN-LIB mutations ------------------------------------------------------------------------
def _tokens(text: str) -> list[str]:
    return text.replace("(", " ( ").replace(")", " ) ").split()


_BAD_NUMBERS = ("nan", "NaN", "inf", "-inf", "1e400", "-1e400", "1e", "--1", "0x10", "1.2.3",
                "1/0", "", "X_0", "Y_999", "X_-1")


def vnnlib_mutant(text: str, kind: str, rng: random.Random) -> str:
    """One mutation of a VNN-LIB text (``kind`` out of ``VNNLIB_KINDS``)."""
    tokens = _tokens(text)
    k = rng.randrange(len(tokens))
    if kind == "drop_token":
        return " ".join(tokens[:k] + tokens[k + 1:])
    if kind == "duplicate_token":
        return " ".join(tokens[:k + 1] + tokens[k:])
    if kind == "bad_number":
        numbers = [i for i, t in enumerate(tokens) if _is_number(t)] or [k]
        i = rng.choice(numbers)
        return " ".join(tokens[:i] + [rng.choice(_BAD_NUMBERS)] + tokens[i + 1:])
    if kind == "huge_number":
        numbers = [i for i, t in enumerate(tokens) if _is_number(t)] or [k]
        i = rng.choice(numbers)
        value = rng.choice(["1e38", "-1e38", "3.5e38", "1e-45", "1" + "0" * 400])
        return " ".join(tokens[:i] + [value] + tokens[i + 1:])
    if kind == "truncate":
        return text[:rng.randrange(len(text))]
    if kind == "duplicate_assert":
        lines = text.splitlines()
        asserts = [line for line in lines if line.startswith("(assert")]
        return "\n".join(lines + [rng.choice(asserts)] * rng.randint(1, 3))
    if kind == "swap_bounds":
        return text.replace("(>= X_0", "(<= X_0 ", 1).replace("(<= X_0", "(>= X_0", 1)
    if kind == "deep_nesting":
        depth = rng.choice([100, 1000, 10_000])
        return text + "\n(assert " + "(and " * depth + "(<= Y_0 1.0)" + ")" * depth + ")\n"
    if kind == "wrong_variable":
        var = rng.choice(["X_", "Y_"]) + str(rng.choice([-1, 2, 99, 10**12]))
        return text + f"\n(assert (<= {var} 1.0))\n"
    if kind == "random_bytes":
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 400)))
        return data.decode("latin-1")
    if kind == "shuffle_lines":
        lines = text.splitlines()
        rng.shuffle(lines)
        return "\n".join(lines)
    raise ValueError(kind)


VNNLIB_KINDS = ("drop_token", "duplicate_token", "bad_number", "huge_number", "truncate",
                "duplicate_assert", "swap_bounds", "deep_nesting", "wrong_variable",
                "random_bytes", "shuffle_lines")


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def check_vnnlib(text: str, kind: str, num_inputs: int, num_outputs: int) -> Finding | None:
    from genbab.vnnlib.parser import parse_vnnlib

    try:
        prop = parse_vnnlib("fuzz.vnnlib", text=text, num_inputs=num_inputs,
                            num_outputs=num_outputs)
    except VerifierError:
        return None
    except RecursionError:
        return Finding(kind, "RecursionError escaped the parser")
    except Exception as err:   # noqa: BLE001 - anything else is the finding
        return Finding(kind, f"{type(err).__name__} escaped the parser: {err}")
    for disjunct in prop.disjuncts:
        if not (np.all(np.isfinite(disjunct.lower)) and np.all(np.isfinite(disjunct.upper))):
            return Finding(kind, "a parsed box has a non-finite bound")
        for clause in disjunct.clauses:
            if not (np.all(np.isfinite(clause.coeffs)) and np.all(np.isfinite(clause.thresholds))):
                return Finding(kind, "a parsed clause has a non-finite number")
    return None


# -- ONNX mutations ---------------------------------------------------------------------------
def onnx_mutant(model: onnx.ModelProto, kind: str, rng: random.Random) -> bytes:
    """One mutation of an ONNX model, serialised (``kind`` out of ``ONNX_KINDS``)."""
    m = copy.deepcopy(model)
    g = m.graph
    if kind == "truncate":
        data = model.SerializeToString()
        return data[:rng.randrange(len(data))]
    if kind == "drop_node":
        del g.node[rng.randrange(len(g.node))]
    elif kind == "duplicate_node":
        k = rng.randrange(len(g.node))
        g.node.insert(k, copy.deepcopy(g.node[k]))
    elif kind == "input_shape":
        dims = g.input[0].type.tensor_type.shape.dim
        d = dims[rng.randrange(len(dims))]
        choice = rng.choice([0, -1, 3, 10**9, "N", None])
        if choice is None:
            d.Clear()
        elif isinstance(choice, str):
            d.dim_param = choice
        else:
            d.dim_value = choice
    elif kind == "bad_attribute":
        node = rng.choice(list(g.node))
        name = rng.choice(["axis", "transB", "alpha", "kernel_shape", "perm", "to"])
        value = rng.choice([999, -999, 2.5, [0, 0, 0], "x"])
        node.attribute.append(helper.make_attribute(name, value))
    elif kind in ("nan_weight", "inf_weight"):
        init = rng.choice(list(g.initializer))
        array = numpy_helper.to_array(init).copy()
        if array.size and array.dtype.kind == "f":
            array.reshape(-1)[rng.randrange(array.size)] = np.nan if kind == "nan_weight" \
                else rng.choice([np.inf, -np.inf])
            init.CopyFrom(numpy_helper.from_array(array, init.name))
    elif kind == "reshape_weight":
        init = rng.choice(list(g.initializer))
        array = numpy_helper.to_array(init)
        if array.size > 1:
            array = array.reshape(-1)[: rng.randrange(1, array.size)]
        init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array), init.name))
    elif kind == "dangling_edge":
        node = rng.choice(list(g.node))
        if node.input:
            node.input[rng.randrange(len(node.input))] = "no_such_tensor"
    elif kind == "unknown_op":
        rng.choice(list(g.node)).op_type = rng.choice(["FrobnicateX", "Relu6", "Loop"])
    elif kind == "opset":
        m.opset_import[0].version = rng.choice([1, 5, 99, 10**6])
    elif kind == "extra_output":
        g.output.append(copy.deepcopy(g.output[0]))
        g.output[-1].name = g.node[0].output[0]
    elif kind == "output_shape":
        dims = g.output[0].type.tensor_type.shape.dim
        if dims:
            dims[-1].dim_value = rng.choice([1, 7, 10**6])
    else:
        raise ValueError(kind)
    return m.SerializeToString()


ONNX_KINDS = ("truncate", "drop_node", "duplicate_node", "input_shape", "bad_attribute",
              "nan_weight", "inf_weight", "reshape_weight", "dangling_edge", "unknown_op",
              "opset", "extra_output", "output_shape")


def check_onnx(data: bytes, kind: str, seed: int = 0) -> tuple[Finding | None, bool]:
    """(finding, loaded): a finding if anything but ``VerifierError`` escapes the loader, or
    if it accepts a model that onnxruntime rejects or computes differently."""
    from genbab.verifier.onnx_loader import load_model

    try:
        proto = onnx.load_from_string(data)
    except Exception:      # noqa: BLE001 - onnx itself cannot parse it: then neither may we
        proto = None
    try:
        graph = load_model(proto if proto is not None else _unparsable(data))
    except VerifierError:
        return None, False
    except Exception as err:   # noqa: BLE001
        return Finding(kind, f"{type(err).__name__} escaped the loader: {err}"), False
    problem = _disagrees_with_onnxruntime(graph, data, seed)
    return (Finding(kind, problem) if problem else None), True


def _unparsable(data: bytes) -> Path:
    """Bytes onnx cannot parse, as a file: the loader's own read must reject them."""
    path = _SCRATCH / "unparsable.onnx"
    path.write_bytes(data)
    return path


_SCRATCH = Path(tempfile.mkdtemp(prefix="genbab_fuzz_"))


def _disagrees_with_onnxruntime(graph, data: bytes, seed: int) -> str | None:
    import onnxruntime as ort
    import torch

    from genbab.verifier.forward import evaluate

    try:
        options = ort.SessionOptions()
        options.log_severity_level = 4
        options.intra_op_num_threads = options.inter_op_num_threads = 1   # start-up dominates
        session = ort.InferenceSession(data, sess_options=options,
                                       providers=["CPUExecutionProvider"])
        inp = session.get_inputs()[0]
        x = np.random.default_rng(seed).uniform(-1, 1, graph.input_shape).astype(np.float32)
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        expected = np.asarray(session.run(None, {inp.name: x.reshape(shape)})[0], np.float64)
    except Exception as err:   # noqa: BLE001
        if "NOT_IMPLEMENTED" in str(err):
            return None   # valid ONNX that this onnxruntime has no kernel for (Gemm at opset 1)
        return f"genbab loaded a model onnxruntime rejects: {type(err).__name__}: {err}"[:300]
    with torch.no_grad():
        got = evaluate(graph, torch.from_numpy(x).reshape(1, *graph.input_shape)).double()
    got = got.reshape(-1).numpy()
    if got.shape != expected.reshape(-1).shape:
        return f"output shapes differ: genbab {got.shape}, onnxruntime {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    if not np.allclose(got, expected.reshape(-1), atol=1e-4 * scale, rtol=1e-4, equal_nan=True):
        return f"outputs differ from onnxruntime by {np.abs(got - expected.reshape(-1)).max():.3g}"
    return None


# -- through the CLI --------------------------------------------------------------------------
_STARTUP_SLACK_S = 0.5   # the subprocess's own start before genbab's clock starts


def check_cli(onnx_path: Path, spec_path: Path, kind: str, may_answer: bool,
              timeout_s: float = 5.0) -> Finding | None:
    """Run ``genbab verify`` as a user would; ``may_answer``: the inputs are valid ones, so
    ``sat`` / ``unsat`` are allowed."""
    result = onnx_path.with_suffix(".result.txt")
    began = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "genbab.cli", "verify", str(onnx_path),
                               str(spec_path), "--timeout", str(timeout_s), "--threads", "1",
                               "--result-file", str(result)], capture_output=True, text=True,
                              timeout=timeout_s + 30, cwd=REPO)
    except subprocess.TimeoutExpired:
        return Finding(kind, "the CLI hung past its timeout + 30 s")
    took = time.monotonic() - began
    word = result.read_text().split("\n", 1)[0].strip() if result.exists() else ""
    if "Traceback" in proc.stderr:
        return Finding(kind, "traceback: " + proc.stderr.strip().splitlines()[-1][:200])
    if word not in WORDS:
        return Finding(kind, f"result file says {word!r} (exit {proc.returncode})")
    if took > timeout_s + 2.0 + _STARTUP_SLACK_S:
        return Finding(kind, f"answered after {took:.1f} s with a {timeout_s} s timeout")
    if word in ("sat", "unsat") and not may_answer:
        return Finding(kind, f"{word} on an input that is broken")
    if proc.returncode not in (0, 2):
        return Finding(kind, f"exit status {proc.returncode}")
    return None


# -- the campaign -----------------------------------------------------------------------------
@dataclass
class Tally:
    tried: Counter
    findings: list[Finding]


def seed_inputs() -> list[tuple[Path, Path]]:
    return [(DEMO / "onnx" / f"{m}.onnx", DEMO / "vnnlib" / f"{s}.vnnlib") for m, s in SEEDS]


def campaign(count: int, cli: int, seed: int, log=print) -> tuple[Tally, Tally]:
    """``count`` mutants of each kind (VNN-LIB and ONNX), ``cli`` of them also run through
    the CLI.  Returns the VNN-LIB and ONNX tallies."""
    rng = random.Random(seed)
    vnn, onx = Tally(Counter(), []), Tally(Counter(), [])
    work = _SCRATCH
    seeds = seed_inputs()
    for kind in VNNLIB_KINDS:
        for _ in range(count):
            onnx_path, spec_path = rng.choice(seeds)
            text = vnnlib_mutant(spec_path.read_text(), kind, rng)
            vnn.tried[kind] += 1
            finding = check_vnnlib(text, kind, *_sizes(onnx_path))
            if finding:
                vnn.findings.append(finding)
    for kind in ONNX_KINDS:
        for _ in range(count):
            onnx_path, _spec = rng.choice(seeds)
            data = onnx_mutant(onnx.load(onnx_path), kind, rng)
            onx.tried[kind] += 1
            finding, _ = check_onnx(data, kind, rng.randrange(1 << 30))
            if finding:
                onx.findings.append(finding)
    for k in range(cli):
        onnx_path, spec_path = rng.choice(seeds)
        if k % 2:
            kind = rng.choice(VNNLIB_KINDS)
            spec = work / f"m{k}.vnnlib"
            spec.write_text(vnnlib_mutant(spec_path.read_text(), kind, rng), errors="replace")
            model, valid = onnx_path, _parses(spec.read_text(errors="replace"), onnx_path)
        else:
            kind = rng.choice(ONNX_KINDS)
            model = work / f"m{k}.onnx"
            model.write_bytes(onnx_mutant(onnx.load(onnx_path), kind, rng))
            spec = spec_path
            finding, loaded = check_onnx(model.read_bytes(), kind)
            valid = loaded and finding is None
        finding = check_cli(model, spec, f"cli:{kind}", may_answer=valid)
        (vnn if k % 2 else onx).tried[f"cli:{kind}"] += 1
        if finding:
            (vnn if k % 2 else onx).findings.append(finding)
        log(f"cli {k + 1}/{cli}: {kind}: {'FINDING ' + finding.problem if finding else 'ok'}")
    return vnn, onx


def _sizes(onnx_path: Path) -> tuple[int, int]:
    from genbab.verifier.onnx_loader import load_model
    graph = load_model(onnx_path)
    return graph.input_size, graph.output_size


def _parses(text: str, onnx_path: Path) -> bool:
    """Whether the (mutated) property is a valid one: then sat / unsat are fair answers."""
    from genbab.vnnlib.parser import parse_vnnlib
    try:
        parse_vnnlib("x.vnnlib", text=text, num_inputs=_sizes(onnx_path)[0],
                     num_outputs=_sizes(onnx_path)[1])
        return True
    except Exception:   # noqa: BLE001
        return False


def report(vnn: Tally, onx: Tally) -> str:
    lines = ["| input | mutation | tried | findings |", "|---|---|---|---|"]
    for name, tally in (("VNN-LIB", vnn), ("ONNX", onx)):
        for kind, n in sorted(tally.tried.items()):
            found = sum(f.kind == kind for f in tally.findings)
            lines.append(f"| {name} | {kind} | {n} | {found} |")
    total = sum(vnn.tried.values()) + sum(onx.tried.values())
    lines.append(f"| all | | {total} | {len(vnn.findings) + len(onx.findings)} |")
    for f in vnn.findings + onx.findings:
        lines.append(f"- {f.kind}: {f.problem}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50, help="mutants per kind")
    parser.add_argument("--cli", type=int, default=20, help="mutants also run through the CLI")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    vnn, onx = campaign(args.count, args.cli, args.seed)
    print(report(vnn, onx))
    return 1 if vnn.findings or onx.findings else 0


if __name__ == "__main__":
    sys.exit(main())
