"""dlib's model-file format: the serialised values (dlib/serialize.h) and the per-layer records of
its ``dnn`` networks, read with a check of every field.

Both networks embedlab reads from dlib's files use it: the face descriptor
(:mod:`embedlab.features.dlib_resnet`) and the MMOD face detector
(:mod:`embedlab.features.dlib_mmod`). A field that does not hold what the
network needs is a :class:`~embedlab.core.errors.FeatureError` naming the file,
the field and the byte offset.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from embedlab.core.errors import FeatureError


def read_model_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a dlib model file, or a FeatureError naming it when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FeatureError(f"cannot read dlib model file {path}: {exc.strerror or exc}") from None


# -- dlib's serialisation primitives (dlib/serialize.h) ---------------------
class Stream:
    """Reads dlib's serialised values from a byte buffer, naming what it expected on failure."""

    def __init__(self, data: bytes, path: str, model: str = "dlib's face recognition network"):
        self.data = memoryview(data)
        self.pos = 0
        self.path = path
        self.model = model

    def fail(self, what: str) -> FeatureError:
        return FeatureError(
            f"model file {self.path} is corrupt or not {self.model}: {what} "
            f"(at byte {self.pos} of {len(self.data)})")

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"file ends inside {what}; it is truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, what: str, nbytes: int = 8, signed: bool = True) -> int:
        # A control byte (size in the low nibble, 0x80 = negative) and then
        # `size` little-endian magnitude bytes.
        ctrl = self.take(1, what)[0]
        size = ctrl & 0x0F
        negative = bool(ctrl & 0x80)
        if ctrl & 0x70 or size == 0 or size > nbytes or (negative and not signed):
            self.pos -= 1
            raise self.fail(f"bad integer encoding for {what}")
        value = int.from_bytes(self.take(size, what), "little")
        return -value if negative else value

    def uint(self, what: str, nbytes: int = 8) -> int:
        return self.int(what, nbytes, signed=False)

    def boolean(self, what: str) -> bool:
        ch = self.take(1, what)[0]
        if ch not in (ord("0"), ord("1")):
            self.pos -= 1
            raise self.fail(f"bad boolean for {what}")
        return ch == ord("1")

    def string(self, what: str, limit: int = 64) -> str:
        n = self.uint(what)
        if n > limit:
            raise self.fail(f"implausible length {n} for {what}")
        return bytes(self.take(n, what)).decode("latin-1")

    def expect(self, what: str, allowed: Sequence[str]) -> str:
        start = self.pos
        text = self.string(what)
        if text not in allowed:
            self.pos = start
            raise self.fail(f"expected {what} ({' or '.join(allowed)}), found {text!r}")
        return text

    def version(self, what: str, allowed: Sequence[int]) -> int:
        start = self.pos
        v = self.int(f"version of {what}", nbytes=4)
        if v not in allowed:
            self.pos = start
            raise self.fail(f"unexpected version {v} of {what}")
        return v

    def real(self, what: str) -> float:
        # dlib's portable float: int64 mantissa and int16 exponent, value = m * 2**e.
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.fail(f"{what} uses dlib's old text float format, which is not supported")
        mantissa = self.int(what, nbytes=8)
        exponent = self.int(what, nbytes=2)
        if exponent >= 32000:  # inf, -inf and nan markers
            raise self.fail(f"{what} is not a finite number")
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:
            raise self.fail(f"{what} is out of range") from None

    def shape(self, what: str) -> tuple[int, int, int, int]:
        dims = tuple(self.int(what) for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.fail(f"negative size in {what}")
        return dims  # type: ignore[return-value]

    def tensor(self, what: str) -> np.ndarray:
        # resizable_tensor: version 2, four sizes, then raw little-endian float32 values.
        self.version(what, (2,))
        shape = self.shape(what)
        count = shape[0] * shape[1] * shape[2] * shape[3]  # Python ints: no overflow on a corrupt size
        raw = self.take(4 * count, what)
        values = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        if not np.isfinite(values).all():
            raise self.fail(f"{what} holds values that are not finite")
        return values

    def alias(self, what: str) -> tuple[int, int, int, int]:
        self.version(what, (1,))
        return self.shape(what)



# -- one layer of a dlib network, and what the file holds for it ------------
@dataclass
class Layer:
    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, tag, skip, fc
    args: tuple = ()
    params: dict[str, Any] = field(default_factory=dict)


def default_padding(size: int, stride: int) -> int:
    # dlib's template default: no padding when striding, else half the window.
    return 0 if stride != 1 else size // 2


def read_layer_state(s: Stream, i: int, version: int, last: bool) -> None:
    """Skip what dlib saves after each layer's details: its flags and training-time tensors."""
    for flag in ("setup", "gradient stale", "output disabled"):
        s.boolean(f"{flag} flag of layer {i}")
    s.tensor(f"input gradient of layer {i}")
    s.tensor(f"cached output of layer {i}")
    if last:
        s.tensor(f"final gradient of layer {i}")
        if version == 3:
            s.uint(f"sample expansion factor of layer {i}")
    elif version == 2:
        s.tensor(f"parameter gradient of layer {i}")


def check_file_end(s: Stream, data: bytes, path, sha256: str | None, model: str) -> str:
    """The file's sha256, once nothing is left unread and it matches ``sha256`` (when given)."""
    if s.pos != len(data):
        raise s.fail(f"{len(data) - s.pos} unexpected bytes after the network")
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise FeatureError(
            f"model file {path} has the layout of {model} but not its published content "
            f"(sha256 {digest[:16]}..., expected {sha256[:16]}...): it is corrupt or a different "
            f"model; reinstall face_recognition_models")
    return digest


def read_layer_details(s: Stream, layer: Layer, channels: int) -> int:
    """Read one layer's own fields; return the channel count it outputs."""
    kind = layer.kind
    if kind == "con":
        filters, nr, nc, sy, sx = layer.args
        version = s.expect("convolution layer", ("con_4", "con_5", "con_6"))
        params = s.tensor("convolution parameters")
        found = (s.int("filter count"), s.int("filter rows"), s.int("filter columns"),
                 s.int("row stride", 4), s.int("column stride", 4))
        pad = (s.int("row padding", 4), s.int("column padding", 4))
        if found != layer.args or pad != (default_padding(nr, sy), default_padding(nc, sx)):
            raise s.fail(f"convolution {found} with padding {pad} where the network has {layer.args}")
        w_shape = s.alias("convolution filters")
        b_shape = s.alias("convolution biases")
        for name in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
            s.real(f"convolution {name} multiplier")
        use_bias = s.boolean("convolution bias flag") if version in ("con_5", "con_6") else True
        use_relu = s.boolean("convolution relu flag") if version == "con_6" else False
        if w_shape != (filters, channels, nr, nc):
            raise s.fail(f"convolution filters of shape {w_shape}, expected {(filters, channels, nr, nc)}")
        n_w = filters * channels * nr * nc
        expected = n_w + (filters if use_bias else 0)
        if params.size != expected or (use_bias and b_shape != (1, filters, 1, 1)):
            raise s.fail(f"convolution with {params.size} parameters, expected {expected}")
        flat = params.reshape(-1)
        layer.params = {"weight": flat[:n_w].reshape(w_shape),
                        "bias": flat[n_w:] if use_bias else np.zeros(filters, np.float32),
                        "relu": use_relu}
        return filters
    if kind == "affine":
        version = s.expect("affine layer", ("affine_", "affine_2"))
        params = s.tensor("affine parameters").reshape(-1)
        g_shape = s.alias("affine gamma")
        b_shape = s.alias("affine beta")
        mode = s.int("affine mode", 4)
        disabled = s.boolean("affine disabled flag") if version == "affine_2" else False
        if mode != 0 or disabled or g_shape != (1, channels, 1, 1) or b_shape != g_shape \
                or params.size != 2 * channels:
            raise s.fail(f"affine layer (mode {mode}, gamma {g_shape}, {params.size} parameters) "
                         f"does not fit {channels} channels")
        layer.params = {"gamma": params[:channels], "beta": params[channels:]}
        return channels
    if kind == "relu":
        version = s.expect("relu layer", ("relu_", "relu_2"))
        if version == "relu_2" and s.boolean("relu disabled flag"):
            raise s.fail("a relu layer is disabled")
        return channels
    if kind in ("max_pool", "avg_pool"):
        s.expect(f"{kind} layer", (f"{kind}_2",))
        found = (s.int("pool rows"), s.int("pool columns"), s.int("pool row stride", 4),
                 s.int("pool column stride", 4))
        pad = (s.int("pool row padding", 4), s.int("pool column padding", 4))
        nr, nc, sy, sx = layer.args
        if found != layer.args or pad != (default_padding(nr, sy), default_padding(nc, sx)):
            raise s.fail(f"{kind} {found} with padding {pad} where the network has {layer.args}")
        return channels
    if kind == "add_prev":
        s.expect("add_prev layer", ("add_prev_",))
        return channels  # the caller sets the channel count of the sum
    if kind == "fc":
        version = s.expect("fully connected layer", ("fc_2", "fc_3"))
        n_out, n_in = s.uint("fc outputs"), s.uint("fc inputs")
        params = s.tensor("fc parameters")
        w_shape = s.alias("fc weights")
        s.alias("fc biases")
        bias_mode = s.int("fc bias mode", 4)
        for name in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
            s.real(f"fc {name} multiplier")
        if version == "fc_3":
            s.boolean("fc bias flag")
        if (n_out, n_in, bias_mode) != (layer.args[0], channels, 1) or w_shape != (n_in, n_out, 1, 1) \
                or params.size != n_in * n_out:
            raise s.fail(f"fc layer {n_in}->{n_out} (bias mode {bias_mode}, {params.size} parameters) "
                         f"where the network has fc_no_bias {channels}->{layer.args[0]}")
        layer.params = {"weight": params.reshape(n_in, n_out)}
        return n_out
    raise AssertionError(kind)
