"""Train the model zoo, export it to ONNX and write L-inf robustness properties and a suite.

    python -m benchmarks.zoo.build [--out DIR] [--families NAMES...] [--tiny] [--seed 0]
                                   [--samples N] [--timeout S]

Every family is one benchmark folder ``DIR/<family>/`` holding ``onnx/*.onnx`` and
``vnnlib/*.vnnlib``; ``DIR/instances.csv`` (``benchmark,onnx,vnnlib,timeout``, paths relative
to the family folder) runs them all with ``genbab run-suite DIR/instances.csv --root DIR``.
``DIR/expected_results.csv`` marks the instances where PGD found a counterexample that
onnxruntime confirmed (``sat``); the others are open.  ``DIR/models.csv``,
``DIR/properties.csv`` and ``DIR/README.md`` record accuracies, training times and margins.

Full zoo: for each model, the first ``--samples`` correctly classified test samples at every
radius of ``RADII`` (``role=ladder``) and at the radii where CROWN's worst margin is -1%, -5%
and -25% of the clean margin (``role=boundary``: just past what bound propagation alone proves,
where branch-and-bound decides; ``benchmarks.zoo.boundary``).  ``--tiny``: the smallest member of every family with two properties
each, chosen by construction: the largest-margin sample of the first few at radius
``TINY_SAFE_RADIUS`` (``role=robust``), and the smallest radius of ``TINY_ATTACK_RADII`` at
which PGD flips one of them by at least ``TINY_ATTACK_MARGIN`` (``role=attackable``).
"""
from __future__ import annotations

import argparse
import csv
import shutil
import sys
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort
import torch
from torch import nn

from genbab.verifier.threads import single_thread
from benchmarks.zoo.boundary import boundary_radii
from benchmarks.zoo.data import Dataset, load_digits_dataset, load_sequence_dataset
from benchmarks.zoo.families import FAMILIES, ModelSpec, full_specs, tiny_specs
from benchmarks.zoo.models import parameter_count
from benchmarks.zoo.properties import (AttackOutcome, RobustnessProperty, attack,
                                       correct_samples, make_property, write_vnnlib)
from benchmarks.zoo.training import accuracy, train

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "generated"
DEFAULT_TINY_OUT = HERE / "generated" / "tiny"
SEED = 0
OPSET = 17
DEFAULT_SAMPLES = 3
DEFAULT_TIMEOUT_S = 30.0
TINY_TIMEOUT_S = 20.0
# L-inf radii of the full zoo's properties.  At 0.005 PGD flipped none of the first samples
# and bound propagation alone proved them all, so the ladder starts at 0.01 and goes up to
# where most are attackable (about 1.5 grey levels of the 0..16 digits at 0.1).
RADII = {"digits_flat": (0.01, 0.02, 0.05, 0.1), "digits_image": (0.01, 0.02, 0.05, 0.1),
         "sequences": (0.02, 0.05, 0.1, 0.2)}
TINY_SAFE_RADIUS = 1e-3
TINY_ATTACK_RADII = (0.05, 0.1, 0.2, 0.3, 0.5)
TINY_CANDIDATES = 10       # the first correctly classified test samples considered
TINY_ATTACK_MARGIN = 0.1   # logits: a clear counterexample, so that any decent attack finds one
CSV_NAMES = ("instances.csv", "expected_results.csv", "models.csv", "properties.csv",
             "README.md")


@dataclass(frozen=True)
class BuildOptions:
    out: Path
    families: tuple[str, ...] = FAMILIES
    tiny: bool = False
    seed: int = SEED
    samples: int = DEFAULT_SAMPLES
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class Instance:
    """One property of one model (a row of properties.csv); paths relative to the family."""
    benchmark: str
    onnx: str
    vnnlib: str
    prop: RobustnessProperty
    outcome: AttackOutcome
    role: str                  # tiny zoo: "robust" or "attackable"; full zoo: "ladder", "boundary"


@dataclass(frozen=True)
class ModelRecord:
    spec: ModelSpec
    onnx: str
    parameters: int
    test_accuracy: float
    train_s: float
    onnx_kb: float
    instances: tuple[Instance, ...]


# --------------------------------------------------------------------------- building

def build_zoo(options: BuildOptions) -> list[ModelRecord]:
    """Train, export and write everything for ``options.families``; returns one record per
    model (in FAMILIES order).  Each family's folder is emptied first."""
    unknown = sorted(set(options.families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    specs = [s for s in (tiny_specs() if options.tiny else full_specs())
             if s.family in options.families]
    options.out.mkdir(parents=True, exist_ok=True)
    for family in options.families:
        shutil.rmtree(options.out / family, ignore_errors=True)
    datasets: dict[str, Dataset] = {}
    records = []
    with single_thread():
        for spec in specs:
            if spec.dataset not in datasets:
                datasets[spec.dataset] = _load_dataset(spec.dataset)
            records.append(build_model(spec, datasets[spec.dataset], options))
    write_tables(options, records)
    return records


def _load_dataset(name: str) -> Dataset:
    if name == "sequences":
        return load_sequence_dataset()
    return load_digits_dataset(image=name == "digits_image")


def build_model(spec: ModelSpec, data: Dataset, options: BuildOptions) -> ModelRecord:
    """Train ``spec`` (seeded by the build seed and its name), export it, write its
    properties."""
    seed = model_seed(options.seed, spec.name)
    torch.manual_seed(seed)
    start = time.monotonic()
    model = train(spec.make(), data, spec.train, seed)
    train_s = time.monotonic() - start
    folder = options.out / spec.family
    onnx_rel = f"onnx/{spec.name}.onnx"
    (folder / "onnx").mkdir(parents=True, exist_ok=True)
    (folder / "vnnlib").mkdir(parents=True, exist_ok=True)
    export_onnx(model, data.input_shape, folder / onnx_rel)
    session = ort.InferenceSession(str(folder / onnx_rel), providers=["CPUExecutionProvider"])
    if options.tiny:
        planned = tiny_plan(model, data, session)
    else:
        planned = full_plan(model, data, session, options.samples, folder / onnx_rel)
    instances = tuple(write_instance(spec, data, onnx_rel, folder, *entry) for entry in planned)
    return ModelRecord(spec, onnx_rel, parameter_count(model),
                       accuracy(model, data.x_test, data.y_test), train_s,
                       (folder / onnx_rel).stat().st_size / 1024, instances)


def model_seed(seed: int, name: str) -> int:
    """A per-model seed that does not depend on which other models are built."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**31


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: Path) -> None:
    """The exporter ``genbab.api.export_module`` uses (TorchScript, opset 17, batch 1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # the TorchScript exporter's deprecation notices
        torch.onnx.export(model.eval(), (torch.zeros(1, *input_shape),), str(path),
                          dynamo=False, input_names=["input"], output_names=["output"],
                          opset_version=OPSET)


def full_plan(model: nn.Module, data: Dataset, session: ort.InferenceSession, samples: int,
              onnx_path: Path) -> list[tuple[RobustnessProperty, AttackOutcome, str]]:
    """The first ``samples`` correct test samples, each at every radius of its data set
    (``role=ladder``) and just past the radius CROWN alone certifies (``role=boundary``,
    ``benchmarks.zoo.boundary``)."""
    chosen = correct_samples(model, data.x_test, data.y_test, samples)
    plan = [(sample, radius, "ladder") for sample in chosen for radius in RADII[data.name]]
    for sample in chosen:
        centre = data.x_test[sample].double().reshape(-1).numpy()
        clean = make_property(model, data.x_test, data.y_test, sample, 0.0).clean_margin
        radii = boundary_radii(onnx_path, centre, int(data.y_test[sample]), data.num_classes,
                               clean, max(RADII[data.name]))
        plan += [(sample, r, "boundary") for r in dict.fromkeys(radii)
                 if r not in RADII[data.name]]
    props = [make_property(model, data.x_test, data.y_test, sample, radius)
             for sample, radius, _ in plan]
    outcomes = attack(model, props, data.input_shape, session)
    return [(prop, outcome, role) for prop, outcome, (_, _, role) in zip(props, outcomes, plan)]


def tiny_plan(model: nn.Module, data: Dataset, session: ort.InferenceSession
              ) -> list[tuple[RobustnessProperty, AttackOutcome, str]]:
    """A robust-by-construction property and an attackable one (see the module docstring)."""
    chosen = correct_samples(model, data.x_test, data.y_test, TINY_CANDIDATES)
    candidates = [make_property(model, data.x_test, data.y_test, sample, TINY_SAFE_RADIUS)
                  for sample in chosen]
    safe = max(candidates, key=lambda prop: prop.clean_margin)
    plan = [(safe, attack(model, [safe], data.input_shape, session)[0], "robust")]
    for radius in TINY_ATTACK_RADII:
        props = [make_property(model, data.x_test, data.y_test, s, radius) for s in chosen]
        outcomes = attack(model, props, data.input_shape, session)
        flipped = [(p, o) for p, o in zip(props, outcomes)
                   if o.confirmed and o.min_margin <= -TINY_ATTACK_MARGIN]
        if flipped:
            return plan + [(*flipped[0], "attackable")]
    raise RuntimeError(f"PGD flips none of samples {chosen} at radii up to "
                       f"{TINY_ATTACK_RADII[-1]}; the tiny zoo needs an attackable property")


def write_instance(spec: ModelSpec, data: Dataset, onnx_rel: str, folder: Path,
                   prop: RobustnessProperty, outcome: AttackOutcome, role: str) -> Instance:
    vnnlib_rel = f"vnnlib/{prop.stem(spec.name)}.vnnlib"
    found = ("a counterexample, confirmed by onnxruntime" if outcome.confirmed
             else "no counterexample found")
    header = [f"genbab zoo ({spec.family}): {spec.name}, test sample {prop.sample} of "
              f"{data.name} (class {prop.label}, clean margin {prop.clean_margin:.4f}),",
              f"L-inf radius {prop.radius:g} clipped to [0, 1].  Written by "
              "benchmarks/zoo/build.py.",
              f"PGD in the box: lowest margin {outcome.min_margin:.4f}, {found}."]
    write_vnnlib(folder / vnnlib_rel, prop, data.num_classes, header)
    return Instance(spec.family, onnx_rel, vnnlib_rel, prop, outcome, role)


# --------------------------------------------------------------------------- tables

def write_tables(options: BuildOptions, records: list[ModelRecord]) -> None:
    """instances.csv, expected_results.csv, models.csv, properties.csv and README.md."""
    instances = [inst for record in records for inst in record.instances]
    _write_csv(options.out / "instances.csv", ["benchmark", "onnx", "vnnlib", "timeout"],
               [[i.benchmark, i.onnx, i.vnnlib, f"{options.timeout_s:g}"] for i in instances])
    _write_csv(options.out / "expected_results.csv",
               ["benchmark", "onnx", "vnnlib", "verdict", "note"],
               [[i.benchmark, i.onnx, i.vnnlib, "sat",
                 f"zoo PGD: margin {i.outcome.min_margin:.4f}, confirmed by onnxruntime"]
                for i in instances if i.outcome.confirmed])
    _write_csv(options.out / "models.csv", MODEL_COLUMNS, [_model_row(r) for r in records])
    _write_csv(options.out / "properties.csv", PROPERTY_COLUMNS,
               [_property_row(i) for i in instances])
    (options.out / "README.md").write_text(format_readme(options, records))


MODEL_COLUMNS = ["benchmark", "model", "onnx", "architecture", "parameters", "dataset",
                 "training", "test_accuracy", "train_s", "onnx_kb", "instances", "pgd_sat"]
PROPERTY_COLUMNS = ["benchmark", "onnx", "vnnlib", "sample", "label", "radius", "clean_margin",
                    "pgd_margin", "expected", "role"]


def _model_row(record: ModelRecord) -> list[str]:
    spec = record.spec
    training = (f"pgd@{spec.train.adversarial_radius:g}" if spec.train.adversarial_radius
                else "normal")
    return [spec.family, spec.name, record.onnx, spec.architecture, str(record.parameters),
            spec.dataset, training, f"{record.test_accuracy:.4f}", f"{record.train_s:.1f}",
            f"{record.onnx_kb:.1f}", str(len(record.instances)),
            str(sum(i.outcome.confirmed for i in record.instances))]


def _property_row(inst: Instance) -> list[str]:
    prop = inst.prop
    return [inst.benchmark, inst.onnx, inst.vnnlib, str(prop.sample), str(prop.label),
            f"{prop.radius:g}", f"{prop.clean_margin:.6f}", f"{inst.outcome.min_margin:.6f}",
            inst.outcome.expected, inst.role]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def format_readme(options: BuildOptions, records: list[ModelRecord]) -> str:
    total = sum(len(r.instances) for r in records)
    sat = sum(i.outcome.confirmed for r in records for i in r.instances)
    lines = [f"# genbab model zoo{' (tiny)' if options.tiny else ''}", "",
             f"Written by `python -m benchmarks.zoo.build` (seed {options.seed}); see "
             "benchmarks/zoo/README.md.", "",
             f"{len(records)} models, {total} instances ({sat} with a PGD counterexample "
             f"confirmed by onnxruntime, marked `sat` in expected_results.csv), timeout "
             f"{options.timeout_s:g} s each.", "",
             "| benchmark | model | parameters | training | test accuracy | train s | PGD sat |",
             "|---|---|---:|---|---:|---:|---:|"]
    for record in records:
        row = _model_row(record)
        lines.append(f"| {row[0]} | {row[1]} | {row[4]} | {row[6]} | {row[7]} | {row[8]} | "
                     f"{row[11]}/{row[10]} |")
    lines += ["", "Run it:", "", "```bash",
              f"genbab run-suite {options.out}/instances.csv --root {options.out} "
              f"--timeout {options.timeout_s:g}", "```", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line

def parse_options(argv: list[str] | None) -> BuildOptions:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default {DEFAULT_OUT}, or {DEFAULT_TINY_OUT} "
                             "with --tiny)")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES),
                        metavar="NAME", help=f"families to build (default all: "
                                             f"{' '.join(FAMILIES)})")
    parser.add_argument("--tiny", action="store_true",
                        help="only the smallest member of every family, two properties each")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                        help="correctly classified test samples per model (full zoo)")
    parser.add_argument("--timeout", type=float, default=None,
                        help=f"timeout column of instances.csv (default {DEFAULT_TIMEOUT_S:g}, "
                             f"{TINY_TIMEOUT_S:g} with --tiny)")
    args = parser.parse_args(argv)
    if args.samples < 1 or (args.timeout is not None and args.timeout <= 0):
        parser.error("--samples and --timeout must be positive")
    out = args.out or (DEFAULT_TINY_OUT if args.tiny else DEFAULT_OUT)
    timeout_s = args.timeout or (TINY_TIMEOUT_S if args.tiny else DEFAULT_TIMEOUT_S)
    return BuildOptions(out.resolve(), tuple(args.families), args.tiny, args.seed,
                        args.samples, timeout_s)


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    start = time.monotonic()
    records = build_zoo(options)
    for record in records:
        sat = sum(i.outcome.confirmed for i in record.instances)
        print(f"{record.spec.family:16s} {record.spec.name:24s} {record.parameters:7d} params  "
              f"test accuracy {record.test_accuracy:.3f}  trained in {record.train_s:5.1f} s  "
              f"{len(record.instances)} properties ({sat} PGD-sat)")
    total = sum(len(r.instances) for r in records)
    print(f"{len(records)} models, {total} instances in {time.monotonic() - start:.0f} s; "
          f"wrote {', '.join(str(options.out / name) for name in CSV_NAMES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
