"""Concrete evaluation of a loaded ``Graph`` with torch, on the batched convention.

Every op type of the normalised IR (what ``verifier.onnx_loader`` emits) has one entry in
``FORWARD``::

    fn(node: Node, args: list[Tensor | None], batched: list[bool]) -> list[Tensor]

* ``args[i]`` is the value of ``node.inputs[i]`` (``None`` for an omitted optional input, ``""``).
* ``batched[i]`` says whether ``args[i]`` carries the leading batch axis, i.e. is
  ``(batch, *onnx_shape)`` (a perturbed tensor) rather than ``onnx_shape`` (a constant).
* The outputs, one per ``node.outputs``, are batched iff any input is batched.  With no batched
  input (constant folding at load time) an op computes plain ONNX semantics.

Broadcasting ops align every operand to the ONNX output rank explicitly (a batched operand gets
ones after its batch axis, a constant gets leading ones), never relying on right-alignment across
the batch axis.  Everything is vectorised and differentiable (autograd flows to the input).
"""
from __future__ import annotations

import math
import weakref
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from genbab.verifier.graph import Graph, Node

ForwardFn = Callable[[Node, list, list], list]

_TORCH_DTYPES = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
    "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8,
    "uint8": torch.uint8, "bool": torch.bool,
}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype for a dtype name stored in node attributes (``"float32"``, ``"int64"``...)."""
    return _TORCH_DTYPES[name]


# -- layout helpers ------------------------------------------------------------------------
def _align(args: list[Tensor], batched: list[bool]) -> list[Tensor]:
    """Reshape operands of a broadcasting op to one common rank: ``(batch?, *onnx_rank R)``."""
    any_batched = any(batched)
    ranks = [a.dim() - int(b) for a, b in zip(args, batched)]
    rank = max(ranks)
    out = []
    for a, b, r in zip(args, batched, ranks):
        if b:
            a = a.reshape(a.shape[:1] + (1,) * (rank - r) + a.shape[1:])
        else:
            a = a.reshape((1,) * (rank - r + int(any_batched)) + a.shape)
        out.append(a)
    return out


def _elementwise(fn: Callable[..., Tensor]) -> ForwardFn:
    def forward(node: Node, args: list, batched: list) -> list:
        present = [(a, b) for a, b in zip(args, batched) if a is not None]
        return [fn(*_align([a for a, _ in present], [b for _, b in present]))]
    return forward


def _unary(fn: Callable[[Tensor, Node], Tensor]) -> ForwardFn:
    return lambda node, args, batched: [fn(args[0], node)]


def _on_batched(fn: Callable[..., object]) -> ForwardFn:
    """Wrap ``fn(node, x, *rest)`` written for a batched first input ``x: (batch, *shape)``; an
    unbatched (constant) ``x`` gets a batch axis of one for the call, removed afterwards."""
    def forward(node: Node, args: list, batched: list) -> list:
        x = args[0] if batched[0] else args[0].unsqueeze(0)
        out = fn(node, x, *args[1:])
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        return outs if batched[0] else [o.squeeze(0) for o in outs]
    return forward


def _merged(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Wrap ``fn(node, x, *rest)`` written for torch's ``(N, C, *spatial)`` layout: our batch
    axis and the ONNX batch axis N are merged for the call, ``(batch, N, ...)`` -> ``(batch*N, ...)``."""
    def call(node: Node, x: Tensor, *rest: Tensor) -> Tensor:
        y = fn(node, x.reshape((-1,) + x.shape[2:]), *rest)
        return y.reshape(x.shape[:2] + y.shape[1:])
    return call


def _dims(node: Node, key: str = "axes") -> list[int]:
    """ONNX axes (already non-negative) shifted past the batch axis."""
    return [a + 1 for a in node.attrs[key]]


# -- linear algebra ----------------------------------------------------------------------------
def _matmul(node: Node, args: list, batched: list) -> list:
    """ONNX MatMul (numpy semantics, 1-D operands promoted) with either operand batched."""
    a, b = args
    ba, bb = batched
    ra, rb = a.dim() - ba, b.dim() - bb
    if ra == 1:
        a = a.unsqueeze(-2)
    if rb == 1:
        b = b.unsqueeze(-1)
    if not ba and bb and a.dim() == 2:
        # constant (k, n) on the left: (b^T a^T)^T is one plain matrix product instead of a
        # batched one that copies the constant once per batch element (much slower)
        y = torch.matmul(b.transpose(-1, -2), a.T).transpose(-1, -2)
    else:
        a, b = _align([a, b], [ba, bb])
        y = torch.matmul(a, b)
    if rb == 1:
        y = y.squeeze(-1)
    if ra == 1:
        y = y.squeeze(-2)
    return [y]


def _gemm(node: Node, args: list, batched: list) -> list:
    """Normalised Gemm: ``x @ W + b``, x: (batch, M, K), W: (K, N) constant, b broadcastable."""
    x, w = args[0], args[1]
    y = torch.matmul(x, w)
    if len(args) > 2 and args[2] is not None:
        y = y + args[2]
    return [y]


def _pad_spatial(x: Tensor, pads: tuple[int, ...], value: float) -> Tensor:
    """Pad the trailing spatial dims with ONNX ``pads`` = (begin..., end...)."""
    n = len(pads) // 2
    torch_pads: list[int] = []
    for i in reversed(range(n)):
        torch_pads += [pads[i], pads[i + n]]
    return F.pad(x, torch_pads, value=value)


def _symmetric(pads: tuple[int, ...]) -> bool:
    n = len(pads) // 2
    return tuple(pads[:n]) == tuple(pads[n:])


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _conv(node: Node, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    a = node.attrs
    pads = a["pads"]
    n = len(pads) // 2
    padding: tuple[int, ...] | int = tuple(pads[:n])
    if not _symmetric(pads):
        x, padding = _pad_spatial(x, pads, 0.0), 0
    return _CONV[n](x, w, b, a["strides"], padding, a["dilations"], a["group"])


def _conv_transpose(node: Node, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """Full transposed convolution, then ``output_padding`` appended and ``pads`` cropped."""
    a = node.attrs
    n = len(a["strides"])
    y = _CONV_T[n](x, w, None, a["strides"], 0, 0, a["group"], a["dilations"])
    pads, extra = a["pads"], a["output_padding"]
    crop = tuple(-p for p in pads[:n]) + tuple(e - p for e, p in zip(extra, pads[n:]))
    if any(crop):
        y = _pad_spatial(y, crop, 0.0)
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * n)
    return y


def _layer_norm(node: Node, args: list, batched: list) -> list:
    x = args[0] if batched[0] else args[0].unsqueeze(0)
    dims = list(range(node.attrs["axis"] + 1, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    y = (x - mean) / torch.sqrt(var + node.attrs["epsilon"])
    rest = [a for a in args[1:] if a is not None]
    y = _align([y] + rest, [True] + [False] * len(rest))
    out = y[0] * y[1] + (y[2] if len(y) > 2 else 0)
    return [out if batched[0] else out.squeeze(0)]


# -- pooling ---------------------------------------------------------------------------------
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _max_pool(node: Node, x: Tensor) -> Tensor:
    a = node.attrs
    pads, kernel = a["pads"], a["kernel_shape"]
    n = len(kernel)
    padding: tuple[int, ...] | int = tuple(pads[:n])
    if not _symmetric(pads) or any(2 * p > k for p, k in zip(pads[:n], kernel)):
        x, padding = _pad_spatial(x, pads, -math.inf), 0
    return _MAX_POOL[n](x, kernel, a["strides"], padding, a["dilations"], bool(a["ceil_mode"]))


def _average_pool(node: Node, x: Tensor) -> Tensor:
    a = node.attrs
    pads, kernel = a["pads"], a["kernel_shape"]
    n = len(kernel)
    pool = _AVG_POOL[n]
    ceil = bool(a["ceil_mode"])
    if _symmetric(pads) and all(2 * p <= k for p, k in zip(pads[:n], kernel)):
        return pool(x, kernel, a["strides"], tuple(pads[:n]), ceil, bool(a["count_include_pad"]))
    summed = pool(_pad_spatial(x, pads, 0.0), kernel, a["strides"], 0, ceil, True)
    if a["count_include_pad"]:
        return summed
    ones = _pad_spatial(torch.ones_like(x[:1, :1]), pads, 0.0)
    return summed / pool(ones, kernel, a["strides"], 0, ceil, True)


# -- shape and data movement -----------------------------------------------------------------
def _slice(node: Node, x: Tensor) -> Tensor:
    """Attrs ``axes``/``starts``/``ends``/``steps`` are resolved: 0 <= start, and the selected
    indices are exactly ``range(start, end, step)`` (end may be -1 for negative steps)."""
    a = node.attrs
    index: list[object] = [slice(None)] * x.dim()
    backwards = []
    for axis, start, end, step in zip(a["axes"], a["starts"], a["ends"], a["steps"]):
        if step > 0:
            index[axis + 1] = slice(start, end, step)
        else:
            backwards.append((axis + 1, start, end, step))
    y = x[tuple(index)]
    for dim, start, end, step in backwards:
        y = torch.index_select(y, dim, torch.arange(start, end, step, device=x.device))
    return y


def _gather(node: Node, x: Tensor, indices: Tensor) -> Tensor:
    dim = node.attrs["axis"] + 1
    idx = indices.to(device=x.device, dtype=torch.int64)
    idx = torch.where(idx < 0, idx + x.shape[dim], idx)
    y = torch.index_select(x, dim, idx.reshape(-1))
    return y.reshape(x.shape[:dim] + idx.shape + x.shape[dim + 1:])


def _concat(node: Node, args: list, batched: list) -> list:
    dim = node.attrs["axis"]
    if not any(batched):
        return [torch.cat(args, dim=dim)]
    batch = next(a.shape[0] for a, b in zip(args, batched) if b)
    parts = [a if b else a.unsqueeze(0).expand(batch, *a.shape) for a, b in zip(args, batched)]
    return [torch.cat(parts, dim=dim + 1)]


def _expand(node: Node, x: Tensor) -> Tensor:
    shape = tuple(node.attrs["shape"])
    x = x.reshape(x.shape[:1] + (1,) * (len(shape) - (x.dim() - 1)) + x.shape[1:])
    return x.expand(x.shape[0], *shape)


def _nearest_indices(node: Node, axis: int, size: int, device: torch.device) -> Tensor:
    """Source index of every output position along one ONNX axis (Resize, mode nearest)."""
    a = node.attrs
    out, scale = a["output_shape"][axis], a["scales"][axis]
    o = torch.arange(out, dtype=torch.float64, device=device)
    mode = a["coordinate_transformation_mode"]
    if mode == "asymmetric":
        src = o / scale
    elif mode == "align_corners":
        src = o * ((size - 1) / (out - 1)) if out > 1 else torch.zeros_like(o)
    elif mode == "tf_half_pixel_for_nn":
        src = (o + 0.5) / scale
    elif mode == "pytorch_half_pixel" and out <= 1:
        src = torch.zeros_like(o)
    else:  # half_pixel, pytorch_half_pixel
        src = (o + 0.5) / scale - 0.5
    rounding = {"floor": torch.floor, "ceil": torch.ceil,
                "round_prefer_ceil": lambda t: torch.floor(t + 0.5),
                "round_prefer_floor": lambda t: torch.ceil(t - 0.5)}[a["nearest_mode"]]
    return rounding(src).clamp(0, size - 1).to(torch.int64)


def _resize(node: Node, x: Tensor) -> Tensor:
    for axis, (size, out) in enumerate(zip(x.shape[1:], node.attrs["output_shape"])):
        if size != out or node.attrs["scales"][axis] != 1.0:
            x = torch.index_select(x, axis + 1, _nearest_indices(node, axis, size, x.device))
    return x


def _pad(node: Node, x: Tensor) -> Tensor:
    a = node.attrs
    pads = (0,) + tuple(a["pads"][: x.dim() - 1]) + (0,) + tuple(a["pads"][x.dim() - 1:])
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[a["mode"]]
    if mode == "constant":
        return _pad_spatial(x, pads, a["value"])
    n = x.dim()
    torch_pads: list[int] = []
    for i in reversed(range(n)):
        torch_pads += [pads[i], pads[i + n]]
    while len(torch_pads) > 2 and torch_pads[-2:] == [0, 0]:
        torch_pads = torch_pads[:-2]
    return F.pad(x, torch_pads, mode=mode)


def _split(node: Node, x: Tensor) -> list[Tensor]:
    return list(torch.split(x, list(node.attrs["split"]), dim=node.attrs["axis"] + 1))


def _reduce(fn: Callable[..., Tensor]) -> ForwardFn:
    def reduce(node: Node, x: Tensor) -> Tensor:
        dims = _dims(node)
        return fn(x, dim=dims, keepdim=bool(node.attrs["keepdims"])) if dims else x
    return _on_batched(reduce)


# -- ops that only see constants (load-time folding) --------------------------------------
def _shape(node: Node, args: list, batched: list) -> list:
    shape = args[0].shape[int(batched[0]):]
    start, end = node.attrs.get("start", 0), node.attrs.get("end", None)
    return [torch.tensor(shape[start:end], dtype=torch.int64)]


def _constant_of_shape(node: Node, args: list, batched: list) -> list:
    shape = tuple(int(d) for d in args[0].tolist())
    dtype = torch_dtype(node.attrs["dtype"])
    return [torch.full(shape, node.attrs["value"], dtype=dtype)]


def _range(node: Node, args: list, batched: list) -> list:
    start, limit, delta = (a.item() for a in args)
    return [torch.arange(start, limit, delta, dtype=args[0].dtype)]


def _div(a: Tensor, b: Tensor) -> Tensor:
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


def _pow(node: Node, args: list, batched: list) -> list:
    if len(args) == 1:
        return [torch.pow(args[0], node.attrs["exponent"])]
    return [torch.pow(*_align(args, batched))]


def _variadic(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[..., Tensor]:
    def apply(*args: Tensor) -> Tensor:
        out = args[0]
        for a in args[1:]:
            out = fn(out, a)
        return out
    return apply


def _hard_sigmoid(x: Tensor, node: Node) -> Tensor:
    return torch.clamp(node.attrs["alpha"] * x + node.attrs["beta"], 0.0, 1.0)


def _celu(x: Tensor, node: Node) -> Tensor:
    """``max(0, x) + min(0, alpha (exp(x / alpha) - 1))``; the second term is
    ``alpha expm1(min(x, 0) / alpha)`` for either sign of alpha (no overflow for x > 0, so no
    ``inf * 0`` in gradients)."""
    alpha = node.attrs["alpha"]
    return torch.relu(x) + alpha * torch.expm1(torch.clamp(x, max=0.0) / alpha)


def _selu(x: Tensor, node: Node) -> Tensor:
    alpha, gamma = node.attrs["alpha"], node.attrs["gamma"]
    return gamma * torch.where(x > 0, x, alpha * torch.expm1(torch.clamp(x, max=0.0)))


def _shrink(x: Tensor, node: Node) -> Tensor:
    """onnxruntime's order of tests (it matters for lambd < 0): ``x < -lambd`` first."""
    bias, lambd = node.attrs["bias"], node.attrs["lambd"]
    return torch.where(x < -lambd, x + bias, torch.where(x > lambd, x - bias, torch.zeros_like(x)))


FORWARD: dict[str, ForwardFn] = {
    # linear algebra
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Conv": _on_batched(_merged(_conv)),
    "ConvTranspose": _on_batched(_merged(_conv_transpose)),
    # elementwise, broadcasting
    "Add": _elementwise(torch.add),
    "Sub": _elementwise(torch.sub),
    "Mul": _elementwise(torch.mul),
    "Div": _elementwise(_div),
    "Pow": _pow,
    "Max": _elementwise(_variadic(torch.maximum)),
    "Min": _elementwise(_variadic(torch.minimum)),
    "Equal": _elementwise(torch.eq),
    "Less": _elementwise(torch.lt),
    "LessOrEqual": _elementwise(torch.le),
    "Greater": _elementwise(torch.gt),
    "GreaterOrEqual": _elementwise(torch.ge),
    "And": _elementwise(torch.logical_and),
    "Or": _elementwise(torch.logical_or),
    "Xor": _elementwise(torch.logical_xor),
    "Where": _elementwise(torch.where),
    # elementwise, unary
    "Identity": _unary(lambda x, n: x),
    "Neg": _unary(lambda x, n: -x),
    "Not": _unary(lambda x, n: torch.logical_not(x)),
    "Relu": _unary(lambda x, n: torch.relu(x)),
    "LeakyRelu": _unary(lambda x, n: F.leaky_relu(x, n.attrs["alpha"])),
    "Elu": _unary(lambda x, n: F.elu(x, n.attrs["alpha"])),
    "Sigmoid": _unary(lambda x, n: torch.sigmoid(x)),
    "Tanh": _unary(lambda x, n: torch.tanh(x)),
    "Sin": _unary(lambda x, n: torch.sin(x)),
    "Cos": _unary(lambda x, n: torch.cos(x)),
    "Exp": _unary(lambda x, n: torch.exp(x)),
    "Log": _unary(lambda x, n: torch.log(x)),
    "Sqrt": _unary(lambda x, n: torch.sqrt(x)),
    "Reciprocal": _unary(lambda x, n: torch.reciprocal(x)),
    "Abs": _unary(lambda x, n: torch.abs(x)),
    "Sign": _unary(lambda x, n: torch.sign(x)),
    "Floor": _unary(lambda x, n: torch.floor(x)),
    "Ceil": _unary(lambda x, n: torch.ceil(x)),
    "Erf": _unary(lambda x, n: torch.erf(x)),
    "Softplus": _unary(lambda x, n: F.softplus(x)),
    "Softsign": _unary(lambda x, n: F.softsign(x)),
    "HardSigmoid": _unary(_hard_sigmoid),
    "Gelu": _unary(lambda x, n: F.gelu(x, approximate=n.attrs["approximate"])),
    "Celu": _unary(_celu),
    "Selu": _unary(_selu),
    "HardSwish": _unary(lambda x, n: x * torch.clamp(x / 6 + 0.5, 0.0, 1.0)),
    "Atan": _unary(lambda x, n: torch.atan(x)),
    "Shrink": _unary(_shrink),
    "ThresholdedRelu": _unary(lambda x, n: torch.where(x > n.attrs["alpha"], x,
                                                        torch.zeros_like(x))),
    "Mish": _unary(lambda x, n: F.mish(x)),
    # internal ops (fused by the bound-time rewrite), so the rewritten graph evaluates too
    "SiLU": _unary(lambda x, n: F.silu(x)),
    "LogSigmoid": _unary(lambda x, n: F.logsigmoid(x)),
    "Clip": _unary(lambda x, n: torch.clamp(x, n.attrs["min"], n.attrs["max"])),
    "Cast": _unary(lambda x, n: x.to(torch_dtype(n.attrs["to"]))),
    # along axes
    "Softmax": _on_batched(lambda n, x: torch.softmax(x, dim=n.attrs["axis"] + 1)),
    "LogSoftmax": _on_batched(lambda n, x: torch.log_softmax(x, dim=n.attrs["axis"] + 1)),
    "LayerNormalization": _layer_norm,
    "ReduceSum": _reduce(torch.sum),
    "ReduceMean": _reduce(torch.mean),
    "ReduceMax": _reduce(torch.amax),
    "ReduceMin": _reduce(torch.amin),
    "MaxPool": _on_batched(_merged(_max_pool)),
    "AveragePool": _on_batched(_merged(_average_pool)),
    # shape and data movement
    "Reshape": _on_batched(lambda n, x: x.reshape(x.shape[0], *n.attrs["shape"])),
    "Transpose": _on_batched(lambda n, x: x.permute(0, *(p + 1 for p in n.attrs["perm"]))),
    "Concat": _concat,
    "Slice": _on_batched(_slice),
    "Gather": _on_batched(_gather),
    "Split": _on_batched(_split),
    "Resize": _on_batched(_resize),
    "Pad": _on_batched(_pad),
    "Expand": _on_batched(_expand),
    "Tile": _on_batched(lambda n, x: x.repeat(1, *n.attrs["repeats"])),
    # constants only
    "Shape": _shape,
    "ConstantOfShape": _constant_of_shape,
    "Range": _range,
}


def _straight_through(step: Callable[[Tensor], Tensor], slope: Callable[[Tensor], Tensor]):
    """Value of ``step`` with the gradient of a smooth stand-in: attacks need a direction
    through step functions (Sign, Floor), whose true gradient is zero almost everywhere."""
    def forward(x: Tensor, node: Node) -> Tensor:
        smooth = slope(x)
        return smooth + (step(x) - smooth).detach()
    return _unary(forward)


_SIGN_SCALE = 0.5   # surrogate width as a share of the mean |input| of each point


def _scaled_tanh(x: Tensor) -> Tensor:
    """``s tanh(x / s)`` with ``s`` half the mean ``|x|`` of each point (detached): a gradient
    of about 1 for inputs within ``s`` of the step and a fading one beyond.  A fixed
    ``tanh(x)`` gives no gradient at all when pre-activations are in the hundreds (binarised
    networks on 0-255 pixels), and the identity treats saturated units like free ones."""
    if x.dim() < 2:
        s = x.detach().abs().mean()
    else:
        s = x.detach().abs().flatten(1).mean(1).reshape(-1, *[1] * (x.dim() - 1))
    s = (s * _SIGN_SCALE).clamp_min(torch.finfo(x.dtype).tiny)
    return s * torch.tanh(x / s)


# Used by ``evaluate(..., surrogate_gradients=True)``: same values, informative gradients.
SURROGATE: dict[str, ForwardFn] = {
    "Sign": _straight_through(torch.sign, _scaled_tanh),
    "Floor": _straight_through(torch.floor, lambda x: x),
    "Ceil": _straight_through(torch.ceil, lambda x: x),
}


# -- graph evaluation -------------------------------------------------------------------------
_CONSTANT_CACHE: dict[tuple[int, torch.dtype, str], dict[str, Tensor]] = {}


def _forget(graph_id: int) -> None:
    for key in [k for k in _CONSTANT_CACHE if k[0] == graph_id]:
        del _CONSTANT_CACHE[key]


def prepared_constants(graph: Graph, dtype: torch.dtype,
                       device: torch.device | str) -> dict[str, Tensor]:
    """``graph.constants`` on ``device``, floating ones cast to ``dtype`` (integer and boolean
    constants keep their type).  Cached per (graph, dtype, device) for the graph's lifetime."""
    device = torch.device(device)
    key = (id(graph), dtype, str(device))
    cached = _CONSTANT_CACHE.get(key)
    if cached is None:
        if not any(k[0] == id(graph) for k in _CONSTANT_CACHE):
            weakref.finalize(graph, _forget, id(graph))
        cached = {name: t.to(device=device, dtype=dtype) if t.is_floating_point()
                  else t.to(device=device) for name, t in graph.constants.items()}
        _CONSTANT_CACHE[key] = cached
    return cached


def run_node(node: Node, values: dict[str, Tensor], constants: dict[str, Tensor],
             table: dict[str, ForwardFn] = FORWARD) -> list[Tensor]:
    """Evaluate one node; ``values`` holds the batched perturbed tensors computed so far."""
    args, batched = [], []
    for name in node.inputs:
        if name in values:
            args.append(values[name])
            batched.append(True)
        else:
            args.append(constants.get(name))   # None for an omitted optional input ("")
            batched.append(False)
    return table[node.op_type](node, args, batched)


def _last_uses(graph: Graph) -> dict[int, list[str]]:
    last: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        for name in node.inputs:
            last[name] = i
    uses: dict[int, list[str]] = {}
    for name, i in last.items():
        if name != graph.output_name:
            uses.setdefault(i, []).append(name)
    return uses


def evaluate(graph: Graph, x: Tensor, *, keep: bool = False,
             surrogate_gradients: bool = False) -> Tensor | dict[str, Tensor]:
    """Run the graph on ``x: (batch, *graph.input_shape)`` or ``(batch, graph.input_size)``.

    Returns the output ``(batch, *graph.output_shape)``; with ``keep=True`` a dict of every
    perturbed tensor (input included) instead.  dtype and device are taken from ``x``.
    ``surrogate_gradients``: step functions back-propagate a smooth stand-in's gradient
    (values are unchanged), for attacks.
    """
    table = {**FORWARD, **SURROGATE} if surrogate_gradients else FORWARD
    if x.dim() == 0 or x[0].numel() != graph.input_size:
        raise ValueError(f"evaluate: expected (batch, {graph.input_size}) or (batch, "
                         f"*{graph.input_shape}) input, got {tuple(x.shape)}")
    constants = prepared_constants(graph, x.dtype, x.device)
    values = {graph.input_name: x.reshape(x.shape[0], *graph.input_shape)}
    last_uses = {} if keep else _last_uses(graph)
    for i, node in enumerate(graph.nodes):
        values.update(zip(node.outputs, run_node(node, values, constants, table)))
        for name in last_uses.get(i, ()):
            values.pop(name, None)
    return values if keep else values[graph.output_name]
