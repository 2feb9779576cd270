"""``genbab`` command line: verify, check-model, run-suite (and the VNN-COMP scripts' entry).

Heavy modules (torch, onnx, onnxruntime) are imported only inside the commands, so that
``genbab --help`` is instant and ``genbab verify`` starts as fast as importing torch allows.
This is the only module that prints, configures logging or speaks VNN-COMP's words.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

_FINISH_MARGIN_S = 0.5     # the pipeline's own deadline is this much before the timeout, so a
# normal finish (result file, exit) lands within the timeout

EXIT_OK, EXIT_ERROR, EXIT_DISAGREE = 0, 2, 1


def main(argv: list[str] | None = None) -> int:
    """Entry point.  Run as a program (``argv`` None), the timeout watchdog is armed: it ends
    the process if the pipeline overruns; called with an explicit ``argv`` (tests, embedding)
    it is not, so a host process is never killed."""
    # as a program the budget runs from process start; embedded (tests), from this call
    start = time.monotonic() - (_seconds_since_process_start() if argv is None else 0.0)
    parser = _build_parser()
    args = parser.parse_args(argv)
    args.start_time = start
    args.watchdog = argv is None
    _setup_logging(getattr(args, "verbose", 0), getattr(args, "quiet", False))
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.watchdog and args.command == "verify":
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End a verify process without the interpreter's teardown: with torch loaded, tearing
    down modules took 1-1.5 s on a loaded machine, all of it counted in VNN-COMP's wall time.
    The result file is already written and fsynced; stdout and stderr are flushed here."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def _seconds_since_process_start() -> float:
    """How long this process has existed (interpreter start-up included), from /proc; 0 where
    that is not available.  VNN-COMP times the whole process, so the budget starts there."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")   # field 22: starttime
        return min(max(0.0, uptime - started), 30.0)
    except (OSError, ValueError, IndexError):
        return 0.0


# -- verify -------------------------------------------------------------------------------
def cmd_verify(args: argparse.Namespace) -> int:
    from genbab.verifier.errors import VerifierError

    guard = _arm_guard(args) if args.watchdog else None
    try:
        import torch

        from genbab.api import verify

        torch.set_num_threads(args.threads or _usable_cores())

        options = _verify_options(args)
        result = verify(args.model, args.spec, options=options, start_time=args.start_time)
    except (VerifierError, ValueError, OSError) as err:
        return _report_error(args, err, guard)
    except (MemoryError, RuntimeError) as err:
        from genbab.branching.memory import is_out_of_memory

        if not is_out_of_memory(err):
            if args.debug:
                raise
            return _report_error(args, err, guard, internal=True)
        return _report_out_of_memory(args, err, guard)
    except Exception as err:  # a bug in genbab: still answer "error", never sat/unsat
        if args.debug:
            raise
        return _report_error(args, err, guard, internal=True)
    if guard is not None:
        guard.answer_or_wait()
    _write_result(args.result_file, result.vnncomp_word, result.counterexample)
    if args.json:
        print(json.dumps(_result_json(result), indent=1))
    else:
        print(result.vnncomp_word)
        logging.getLogger("genbab").info("%s in %.2f s (%s)", result.vnncomp_word,
                                         result.time_s, result.message)
    return EXIT_OK


def _arm_guard(args: argparse.Namespace):
    """The watchdog and the SIGINT/SIGTERM watcher (genbab/run_guard.py): either one writes
    the result file and a report of the run so far, then ends the process."""
    from genbab.run_guard import RunGuard

    def write(word: str, message: str, elapsed: float) -> None:
        stage = _answer_unfinished(args, word, message, elapsed)
        print(f"genbab: {message} during {stage} after {elapsed:.1f} s: {word}",
              file=sys.stderr, flush=True)

    return RunGuard(args.timeout, args.start_time, write).arm()


def _usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one).  One instance
    at a time on the 2-core machine: two threads solved 47 of the dev suite against 45 with one
    thread (lsnc state_6 53 s vs timeout, acasxu 4_2 prop_2 47 s vs timeout), with the
    median time of the instances both solved unchanged (ratio 0.98)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _verify_options(args: argparse.Namespace):
    """The typed options from the command line (switches for the ablations included)."""
    import dataclasses

    from genbab.verifier.options import BranchingOptions, VerifyOptions

    branching = BranchingOptions(enabled=args.split != "none",
                                 split="auto" if args.split == "none" else args.split,
                                 heuristic=args.branching, branch_points=args.branch_points,
                                 max_memory_gb=args.max_memory, milp=args.milp,
                                 clip=not args.no_clip)
    budget = max(args.timeout - _FINISH_MARGIN_S, 0.5 * args.timeout)
    options = VerifyOptions(timeout_s=budget, device=args.device, branching=branching)
    if args.bound_method:
        options = dataclasses.replace(options, bounds=dataclasses.replace(
            options.bounds, method=args.bound_method))
    return options


def _report_out_of_memory(args, err: BaseException, guard) -> int:
    """Out of memory where no batch could be halved (the root bounds, an attack): the answer
    is ``unknown``, not a crash, with the stage that ran out and what to try."""
    from genbab.api import current_stats

    if guard is not None:
        guard.answer_or_wait()
    stats = current_stats()
    stage = stats.stage if stats is not None else "start-up"
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    message = (f"out of memory during {stage} ({first}); try a larger --max-memory, fewer "
               "--threads or a machine with more memory")
    print(f"genbab: {message}", file=sys.stderr)
    _answer_unfinished(args, "unknown", message, time.monotonic() - args.start_time)
    return EXIT_OK


def _answer_unfinished(args, word: str, message: str, elapsed: float) -> str:
    """Write ``word`` for a run the pipeline did not finish and print it (``--json``: the
    partial report); returns the stage that was running."""
    _write_result(args.result_file, word, None)
    report = _partial_report(word, message, elapsed)
    print(json.dumps(report) if args.json else word, flush=True)
    return report["stage"]


def _report_error(args, err: Exception, guard, internal: bool = False) -> int:
    if guard is not None:
        guard.answer_or_wait()
    if args.debug and not internal:
        raise err
    kind = "internal error (please report it)" if internal else "error"
    message = f"{type(err).__name__}: {err}" if internal else str(err)
    print(f"genbab: {kind}: {message}", file=sys.stderr)
    _write_result(args.result_file, "error", None)
    if args.json:
        print(json.dumps({"result": "error", "message": message}))
    else:
        print("error")
    return EXIT_ERROR


def _result_json(result) -> dict:
    out = {"result": result.vnncomp_word, "status": result.status.value,
           "time_s": round(result.time_s, 4), "message": result.message,
           "stats": {"seconds": {k: round(v, 4) for k, v in result.stats.seconds.items()},
                     "attack_restarts": result.stats.attack_restarts,
                     "attack_steps": result.stats.attack_steps,
                     "bab_rounds": result.stats.bab_rounds,
                     "domains_visited": result.stats.domains_visited,
                     "max_queue": result.stats.max_queue,
                     "splits_by_kind": dict(result.stats.splits_by_kind),
                     "best_bound_history": [[round(t, 3), b] for t, b in
                                            result.stats.best_bound_history],
                     **result.stats.extra}}
    if result.counterexample is not None:
        cex = result.counterexample
        out["counterexample"] = {"x": cex.x.reshape(-1).tolist(), "y": cex.y.reshape(-1).tolist(),
                                 "disjunct": cex.disjunct, "clause": cex.clause,
                                 "margin_onnxruntime": cex.margin,
                                 "margin_float64": cex.margin_float64}
    return out


def _write_result(path: str | None, word: str, counterexample) -> None:
    """Atomically write the VNN-COMP result file (vnncomp.md 2.1)."""
    if not path:
        return
    text = word + "\n"
    if word == "sat" and counterexample is not None:
        from genbab.witness import format_counterexample
        text += format_counterexample(counterexample)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)


def _partial_report(word: str, message: str, elapsed: float) -> dict:
    """The JSON report of a run that the watchdog or a signal ends: the statistics so far and
    the stage that was running (read while the pipeline may be mid-update: best effort)."""
    report = {"result": word, "status": word, "time_s": round(elapsed, 4), "message": message,
              "stage": "start-up"}
    try:
        from genbab.api import current_stats
        from genbab.verifier.result import Result, Status

        stats = current_stats()
        if stats is not None:
            report["stage"] = stats.stage
            full = _result_json(Result(Status(word), time_s=elapsed, stats=stats,
                                       message=message))
            report["stats"] = full["stats"]
    except Exception:   # the report is best effort; the result file is already written
        pass
    return report


# -- check-model --------------------------------------------------------------------------
def cmd_check_model(args: argparse.Namespace) -> int:
    from genbab.verifier.errors import VerifierError

    try:
        return _check_model(args)
    except VerifierError as err:
        if args.debug:
            raise
        print(f"genbab: error: {err}", file=sys.stderr)
        return EXIT_ERROR


_LEVEL_WORDS = {"verify": "verify", "folded": "folded", "attack only": "ATTACK ONLY",
                "unsupported": "NOT SUPPORTED", "not checked": "not checked"}


def _check_model(args: argparse.Namespace) -> int:
    """Per op, what ``verify`` can do with it (``genbab.support``), then agreement with
    onnxruntime.  Exit 0 when verify will run (attack-only models included: they get an
    answer, ``sat`` or ``unknown``) and the model agrees; 1 otherwise."""
    import numpy as np

    from genbab.model_check import compare_with_onnxruntime
    from genbab.support import UNSUPPORTED, support_report

    report = support_report(args.model)
    if not args.json:
        print(f"model: {args.model}")
        for op in report.ops:
            print(f"  {op.op_type:<22} x{op.count:<4} {_LEVEL_WORDS[op.level]:<13} {op.detail}")
        print(f"support: {report.summary}")
    result = {"model": str(args.model), "support": report.level,
              "ops": [{"op_type": o.op_type, "count": o.count, "level": o.level,
                       "detail": o.detail} for o in report.ops]}
    if report.level == UNSUPPORTED:
        if args.json:
            print(json.dumps(result))
        print("result: unsupported operators", file=sys.stderr)
        return EXIT_DISAGREE
    lower = upper = None
    if args.spec:
        from genbab.verifier.onnx_loader import load_model
        from genbab.vnnlib.parser import parse_vnnlib

        graph = load_model(args.model)
        prop = parse_vnnlib(args.spec, num_inputs=graph.input_size,
                            num_outputs=graph.output_size)
        lower, upper = np.asarray(prop.disjuncts[0].lower), np.asarray(prop.disjuncts[0].upper)
    check = compare_with_onnxruntime(args.model, samples=args.samples, lower=lower, upper=upper)
    agree = check.max_rel_error <= args.tolerance and check.finite
    if args.json:
        result.update(max_rel_error=check.max_rel_error, max_abs_error=check.max_abs_error,
                      samples=check.samples, agree=agree)
        print(json.dumps(result))
    else:
        print(f"compared with onnxruntime on {check.samples} random inputs"
              f"{' in the property box' if args.spec else ''}: max relative error "
              f"{check.max_rel_error:.3g} (max abs {check.max_abs_error:.3g}) -> "
              f"{'agree' if agree else 'DISAGREE'} (tolerance {args.tolerance:g})")
    return EXIT_OK if agree else EXIT_DISAGREE


# -- bounds -------------------------------------------------------------------------------
def cmd_bounds(args: argparse.Namespace) -> int:
    from genbab.verifier.errors import VerifierError

    try:
        lower, upper = _output_bounds(args)
    except VerifierError as err:
        if args.debug:
            raise
        print(f"genbab: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps({"method": args.method, "lower": lower, "upper": upper}))
    else:
        for j, (lo, hi) in enumerate(zip(lower, upper)):
            print(f"Y_{j}: [{lo:.8g}, {hi:.8g}]")
    return EXIT_OK


def _output_bounds(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """Certified bounds of every output over the first disjunct's input box."""
    import numpy as np
    import torch

    from genbab.bounds.engine import output_bounds
    from genbab.verifier.onnx_loader import load_model
    from genbab.verifier.options import BoundOptions
    from genbab.vnnlib.parser import parse_vnnlib

    graph = load_model(args.model)
    prop = parse_vnnlib(args.spec, num_inputs=graph.input_size, num_outputs=graph.output_size)
    box = prop.disjuncts[0]
    as_t = lambda a: torch.tensor(np.array(a), dtype=torch.float32).reshape(1, -1)  # noqa: E731
    options = BoundOptions(method=args.method, alpha_iterations=args.iterations)
    lower, upper = output_bounds(graph, as_t(box.lower), as_t(box.upper), method=args.method,
                                 options=options)
    return lower.reshape(-1).tolist(), upper.reshape(-1).tolist()


# -- run-suite ----------------------------------------------------------------------------
def cmd_run_suite(args: argparse.Namespace) -> int:
    from genbab.suite import SuiteOptions, run_suite

    from genbab.suite import is_instances_csv

    suite = Path(args.suite)
    if args.root is None:
        if not (suite.is_file() and is_instances_csv(suite)):
            print("genbab: error: run-suite needs --root (the folder holding the benchmarks) "
                  "unless SUITE is a benchmark's own instances.csv", file=sys.stderr)
            return EXIT_ERROR
        args.root = str(suite.parent.parent)
    options = SuiteOptions(suite=suite, root=Path(args.root), timeout_s=args.timeout,
                           out=Path(args.out) if args.out else None, device=args.device,
                           expected=Path(args.expected) if args.expected else None,
                           filter=args.filter, extra_args=tuple(args.verify_args or ()))
    try:
        return run_suite(options)
    except (OSError, ValueError) as err:
        print(f"genbab: error: {err}", file=sys.stderr)
        return EXIT_ERROR


# -- parser -------------------------------------------------------------------------------
def _memory_size(text: str) -> float:
    from genbab.branching.memory import parse_memory

    try:
        return parse_memory(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genbab", description="Verify neural networks with general nonlinearities "
        "(ONNX models, VNN-LIB properties).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("verify", help="prove or refute a VNN-LIB property on an ONNX model")
    p.add_argument("model", help="ONNX model (.onnx or .onnx.gz)")
    p.add_argument("spec", help="VNN-LIB property (.vnnlib or .vnnlib.gz)")
    p.add_argument("--timeout", type=_positive_float, default=300.0, help="seconds (default 300)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--result-file", help="write the VNN-COMP result file here")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--split", choices=["auto", "input", "all", "relu-only", "none"],
                   default="auto", help="what branch-and-bound splits (none: no branching; "
                   "auto: the input for low-dimensional inputs, else all neurons)")
    p.add_argument("--branching", choices=["bbps", "babsr"], default="bbps",
                   help="neuron-split heuristic (default bbps)")
    p.add_argument("--branch-points", choices=["lut", "midpoint"], default="lut",
                   help="where general neurons are split (default: shipped lookup tables)")
    p.add_argument("--bound-method", choices=["ibp", "crown", "alpha"],
                   help="strongest bound method before branching (default alpha)")
    p.add_argument("--no-clip", action="store_true",
                   help="input splitting without domain clipping (for ablations)")
    p.add_argument("--milp", action="store_true",
                   help="before branching, an exact MILP (HiGHS) for ReLU networks with few "
                        "unstable neurons")
    p.add_argument("--max-memory", type=_memory_size, metavar="SIZE",
                   help="memory the process may use, e.g. 8G or 512M (default: size the BaB "
                        "batches and pool from the free memory)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: every core this process may use; pass 1 "
                        "when several runs share the machine, where threads mostly contend)")
    _add_common(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("check-model", help="what verify can do with each op of a model, and "
                                           "agreement with onnxruntime")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument("--spec", help="draw random inputs inside this property's input box")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="maximum relative error accepted (default 1e-4)")
    _add_common(p)
    p.set_defaults(func=cmd_check_model)

    p = sub.add_parser("bounds", help="certified output bounds over a property's input box")
    p.add_argument("model")
    p.add_argument("spec", help="the input box of its first disjunct is used")
    p.add_argument("--method", choices=["ibp", "crown", "alpha"], default="alpha")
    p.add_argument("--iterations", type=int, default=20, help="alpha-CROWN iterations")
    p.add_argument("--json", action="store_true", help='print {"lower": [...], "upper": [...]}')
    _add_common(p)
    p.set_defaults(func=cmd_bounds)

    p = sub.add_parser("run-suite", help="run a suite CSV, one process per instance")
    p.add_argument("suite", help="CSV with rows benchmark,onnx,vnnlib,timeout, or a benchmark's "
                   "own instances.csv (rows onnx,vnnlib,timeout)")
    p.add_argument("--root", help="folder holding BENCHMARK/onnx, BENCHMARK/vnnlib (default for "
                   "an instances.csv: the folder above its benchmark)")
    p.add_argument("--timeout", type=_positive_float, help="override every row's timeout")
    p.add_argument("--out", help="results CSV (default results/<suite>_<time>.csv)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--expected", help="expected_results.csv (default: ROOT/expected_results.csv)")
    p.add_argument("--filter", help="only rows whose benchmark or file names contain this text")
    p.add_argument("--verify-args", nargs=argparse.REMAINDER,
                   help="extra arguments passed to every 'genbab verify'")
    _add_common(p)
    p.set_defaults(func=cmd_run_suite)

    p = sub.add_parser("lut", help="branching-point tables: 'genbab lut build [KEYS] [--check]'",
                       add_help=False)
    p.add_argument("lut_args", nargs=argparse.REMAINDER,
                   help="build [KEYS ...] [--check] [--step S] ... (see 'genbab lut build -h')")
    p.set_defaults(func=cmd_lut)
    return parser


def cmd_lut(args: argparse.Namespace) -> int:
    """``genbab lut build ...`` is ``python -m genbab.lut.build ...`` (offline table building)."""
    rest = list(args.lut_args)
    if not rest or rest[0] != "build":
        print("usage: genbab lut build [KEYS ...] [--check] [--step S] [--step-2d S] "
              "[--refine N] [--out DIR]", file=sys.stderr)
        return EXIT_ERROR
    from genbab.lut.build import main as build_main

    return build_main(rest[1:])


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0, help="more progress output")
    p.add_argument("-q", "--quiet", action="store_true", help="only the result")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
