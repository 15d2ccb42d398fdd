#!/usr/bin/env python3
"""Dev check of tools/convert_tflite.py against the TFLite interpreter (dev-only dependency:
ai_edge_litert).

For each model: convert it, read the safetensors back, run the graph with the plain numpy float32
executor below (a readable reference for the Swift graph executor, NHWC, batch 1), run the
interpreter with experimental_preserve_all_tensors=True on the same image, and compare every
converted op's output with the interpreter's dequantised tensor:
  chain  the numpy graph run end to end from the image (what the engine will compute);
  local  the op alone, fed the interpreter's own (dequantised) inputs: isolates each op's error
         from the drift of the 8-bit requantisation upstream.
Differences are relative to the interpreter tensor's range (max − min), and in units of the
tensor's quantisation step (LSB).

Usage: python3 tools/dev/check_tflite_conversion.py [--image PATH] [--models-dir DIR] [-v]
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import dev_images  # noqa: E402

SHARED = os.environ.get("SEMFUSE_SHARED_DIR", os.path.join(os.path.dirname(REPO), "shared"))
MODELS = [("deeplabv3_mnv2_ade20k_uint8.tflite", 512), ("fast_depth_224.tflite", 224)]


# --- reading the converted file ----------------------------------------------------------------

def read_safetensors(path):
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    metadata = header.pop("__metadata__")
    dtypes = {"F32": "<f4", "I8": "i1", "U8": "u1"}
    base = 8 + n
    tensors = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        tensors[name] = np.frombuffer(blob[base + a:base + b], dtypes[e["dtype"]]).reshape(e["shape"])
    return metadata, tensors


def dequantised(tensors, name, scale_key, zero_key, axis=0):
    """A stored weight or constant as float32: 8-bit ones through scale·(q − zero_point)."""
    q = tensors[name]
    if q.dtype == np.float32:
        return q
    scale, zp = tensors[scale_key], tensors[zero_key]
    if scale.size > 1:
        shape = [1] * q.ndim
        shape[axis] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q.astype(np.float32) - zp) * scale).astype(np.float32)


# --- the reference executor --------------------------------------------------------------------

def same_padding(size, k, stride, dilation):
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return out, total // 2, total - total // 2


def conv_geometry(h, w, kh, kw, op):
    (sh, sw), (dh, dw) = op["stride"], op["dilation"]
    if op["padding"] == "SAME":
        oh, top, bottom = same_padding(h, kh, sh, dh)
        ow, left, right = same_padding(w, kw, sw, dw)
    else:
        oh, top, bottom = (h - (kh - 1) * dh - 1) // sh + 1, 0, 0
        ow, left, right = (w - (kw - 1) * dw - 1) // sw + 1, 0, 0
    return oh, ow, (top, bottom), (left, right)


def taps(x, kh, kw, op):
    """Yields (i, j, patch): the input samples under kernel tap (i, j) for every output pixel."""
    _, h, w, _ = x.shape
    (sh, sw), (dh, dw) = op["stride"], op["dilation"]
    oh, ow, pad_h, pad_w = conv_geometry(h, w, kh, kw, op)
    xp = np.pad(x, [(0, 0), pad_h, pad_w, (0, 0)])
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw, :]


def conv2d(x, weight, bias, op):  # weight [cout, kh, kw, cin]
    cout, kh, kw, _ = weight.shape
    out = None
    for i, j, patch in taps(x, kh, kw, op):
        term = np.tensordot(patch, weight[:, i, j, :], axes=([3], [1]))
        out = term if out is None else out + term
    return out + bias


def depthwise(x, weight, bias, op):  # weight [1, kh, kw, cin·multiplier]
    _, kh, kw, cout = weight.shape
    m = op.get("depth_multiplier", 1)
    out = None
    for i, j, patch in taps(x, kh, kw, op):
        term = (np.repeat(patch, m, axis=3) if m > 1 else patch) * weight[0, i, j, :]
        out = term if out is None else out + term
    return out + bias


def average_pool(x, op):
    if op["global"]:
        return x.mean(axis=(1, 2), keepdims=True)
    kh, kw = op["filter"]
    ones = np.ones_like(x[..., :1])
    total = count = None
    for _, _, patch in taps(x, kh, kw, dict(op, dilation=[1, 1])):
        total = patch if total is None else total + patch
    for _, _, patch in taps(ones, kh, kw, dict(op, dilation=[1, 1])):  # SAME: only real pixels count
        count = patch if count is None else count + patch
    return total / count


def source_coordinates(n_out, n_in, align_corners, half_pixel):
    if align_corners and n_out > 1:
        return np.arange(n_out) * (n_in - 1) / (n_out - 1)
    if half_pixel:
        return (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    return np.arange(n_out) * n_in / n_out  # legacy TF: src = dst · in / out


def resize(x, oh, ow, op):
    _, h, w, _ = x.shape
    a, hp = op["align_corners"], op["half_pixel_centers"]
    if op["op"] == "RESIZE_NEAREST_NEIGHBOR":
        def index(n_out, n_in):
            if a and n_out > 1:
                s = np.round(np.arange(n_out) * (n_in - 1) / (n_out - 1))
            else:
                s = np.floor((np.arange(n_out) + (0.5 if hp else 0.0)) * n_in / n_out)
            return np.minimum(s.astype(int), n_in - 1)
        return x[:, index(oh, h)][:, :, index(ow, w)]

    def axis(n_out, n_in):
        s = np.maximum(source_coordinates(n_out, n_in, a, hp), 0)
        i0 = np.minimum(np.floor(s).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (s - i0).astype(np.float32)
    y0, y1, fy = axis(oh, h)
    x0, x1, fx = axis(ow, w)
    fx = fx[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    bottom = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    fy = fy[None, :, None, None]
    return top * (1 - fy) + bottom * fy


def resize_output_size(op, x, shape_of):
    size = op["size"]
    if "like" in size:
        return shape_of(size["like"])[1:3]
    if "scale" in size:
        return [int(round(x.shape[1] * size["scale"][0])), int(round(x.shape[2] * size["scale"][1]))]
    return size["fixed"]


class Graph:
    def __init__(self, path):
        self.metadata, self.tensors = read_safetensors(path)
        self.graph = json.loads(self.metadata["semfuse.graph"])
        self.ops = self.graph["ops"]
        self.producer = {t: n for n, op in enumerate(self.ops) for t in op["outputs"]}

    def constant(self, name):
        return dequantised(self.tensors, name, f"{name}.scale", f"{name}.zero_point")

    def operand(self, name, values):
        return values[name] if name in values else self.constant(name)

    def run_op(self, n, op, values, shape_of):
        """Op n on values (tensor name → float32 array); returns its outputs, clamped."""
        kind = op["op"]
        x = self.operand(op["inputs"][0], values)
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = dequantised(self.tensors, op["weight"], f"op{n}.weight_scale", f"op{n}.weight_zero_point",
                            op["weight_quant_axis"])
            out = (conv2d if kind == "CONV_2D" else depthwise)(x, w, self.tensors[op["bias"]], op)
        elif kind == "ADD":
            out = x + self.operand(op["inputs"][1], values)
        elif kind == "MUL":
            out = x * self.operand(op["inputs"][1], values)
        elif kind == "AVERAGE_POOL_2D":
            out = average_pool(x, op)
        elif kind == "MEAN":
            out = x.mean(axis=tuple(op["axes"]), keepdims=op["keep_dims"])
        elif kind in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
            out = resize(x, *resize_output_size(op, x, shape_of), op)
        elif kind == "CONCATENATION":
            out = np.concatenate([self.operand(i, values) for i in op["inputs"]], axis=op["axis"])
        elif kind == "SPLIT":
            outs = np.split(x, op["num_splits"], axis=op["axis"])
        elif kind == "PAD":
            out = np.pad(x, op["paddings"])
        elif kind == "RESHAPE":
            out = x.reshape(op["shape"])  # the native shape: the reference runs at the native size
        elif kind in ("QUANTIZE", "DEQUANTIZE"):
            out = x
        elif kind == "RELU":
            out = np.maximum(x, 0)
        elif kind == "RELU6":
            out = np.clip(x, 0, 6)
        elif kind == "HARD_SWISH":
            out = x * np.clip(x + 3, 0, 6) / 6
        elif kind == "LOGISTIC":
            out = 1 / (1 + np.exp(-x))
        else:
            raise ValueError(f"op {n}: {kind} not implemented")
        outs = outs if kind == "SPLIT" else [out]
        lo, hi = op.get("clamp", [None, None])
        if lo is not None or hi is not None:
            outs = [np.clip(o, lo, hi) for o in outs]
        return [o.astype(np.float32) for o in outs]

    def run(self, pixels, ops_filter=None):
        """pixels: uint8 HxWx3 → all tensor values (name → float32 NHWC)."""
        inp = self.graph["input"]
        values = {inp["tensor"]: (inp["scale"] * (pixels[None].astype(np.float32) - inp["zero_point"])).astype(np.float32)}
        def shape_of(name):  # lazily: a `like` resize may refer to a tensor computed later
            if name not in values:
                self.compute(self.producer[name], values, shape_of)
            return values[name].shape
        for n in range(len(self.ops)):
            if self.ops[n]["outputs"][0] not in values:
                self.compute(n, values, shape_of)
        return values

    def compute(self, n, values, shape_of):
        op = self.ops[n]
        for t in op["inputs"]:
            if t not in values and t in self.producer:
                self.compute(self.producer[t], values, shape_of)
        for t, v in zip(op["outputs"], self.run_op(n, op, values, shape_of)):
            values[t] = v


# --- comparison with the interpreter -----------------------------------------------------------

def interpreter_tensors(model_path, pixels):
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=model_path, experimental_preserve_all_tensors=True, num_threads=2)
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    feed = pixels[None]
    if detail["dtype"] == np.int8:
        feed = (feed.astype(np.int16) - 128).astype(np.int8)
    elif detail["dtype"] == np.float32:
        feed = feed.astype(np.float32) / 255
    interp.set_tensor(detail["index"], feed.astype(detail["dtype"]))
    interp.invoke()
    details = {d["index"]: d for d in interp.get_tensor_details()}

    def get(index):
        value = interp.get_tensor(index)
        scale, zp = details[index]["quantization"]
        if value.dtype in (np.uint8, np.int8, np.int16) and scale:
            return ((value.astype(np.float32) - zp) * scale).astype(np.float32), scale
        return value.astype(np.float32), 0.0
    return get


def compare(name, image_path, size, models_dir, verbose):
    model_path = os.path.join(models_dir, name)
    out = os.path.join(tempfile.mkdtemp(), name.replace(".tflite", ".safetensors"))
    subprocess.run([sys.executable, os.path.join(REPO, "tools/convert_tflite.py"), model_path, out],
                   check=True, capture_output=not verbose)
    graph = Graph(out)
    pixels = dev_images.resize_bilinear(dev_images.read_image(image_path), size, size)
    get = interpreter_tensors(model_path, pixels)
    chain = graph.run(pixels)
    print(f"\n{name} on {os.path.basename(image_path)} resized to {size}x{size}: {len(graph.ops)} ops")
    print(f"{'op':>4} {'kind':<24} {'tensor':>6} {'chain max/rng':>13} {'chain med/rng':>13} "
          f"{'local max/rng':>13} {'local max LSB':>13}")
    worst_local = 0.0
    for n, op in enumerate(graph.ops):
        # Local: this op fed the interpreter's own inputs.
        feed = {t: get(int(t[1:]))[0] for t in op["inputs"] if t.startswith("t")}
        def shape_of(t):
            return get(int(t[1:]))[0].shape
        local = graph.run_op(n, op, feed, shape_of)
        for t, lv in zip(op["outputs"], local):
            ref, scale = get(int(t[1:]))
            rng = float(ref.max() - ref.min()) or 1.0
            dc, dl = np.abs(chain[t] - ref), np.abs(lv - ref)
            lsb = dl.max() / scale if scale else float("nan")
            worst_local = max(worst_local, float(dl.max() / rng))
            print(f"{n:>4} {op['op']:<24} {t:>6} {dc.max() / rng:>13.4f} {np.median(dc) / rng:>13.5f} "
                  f"{dl.max() / rng:>13.4f} {lsb:>13.2f}")
    result = {"worst_local": worst_local}
    output = graph.graph["outputs"][0]
    ours, (ref, _) = chain[output["tensor"]], get(int(output["tensor"][1:]))
    if output["role"] == "logits":
        agree = float((ours.argmax(-1) == ref.argmax(-1)).mean())
        # The interpreter's own end result: ARG_MAX after its bilinear upsampling to 512x512.
        print(f"logits {output['tensor']} {list(ours.shape)}: argmax agreement with the interpreter's logits "
              f"{100 * agree:.2f}% of {ours.shape[1] * ours.shape[2]} pixels")
        result["argmax_agreement"] = agree
    else:
        rel = np.abs(ours - ref) / np.maximum(ref, 1e-3)
        print(f"depth {output['tensor']} {list(ours.shape)}: median relative difference {np.median(rel):.4f}, "
              f"90th percentile {np.percentile(rel, 90):.4f}, median |d| {np.median(np.abs(ours - ref)):.4f} m "
              f"(depth range {ref.min():.2f}..{ref.max():.2f} m)")
        result["median_relative_depth"] = float(np.median(rel))
    print(f"worst local (single-op) max difference: {worst_local:.4f} of the tensor's range")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=os.path.join(SHARED, "data/nyuv2/000464.png"))
    parser.add_argument("--models-dir", default=os.path.join(SHARED, "data/weights"))
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    results = {name: compare(name, args.image, size, args.models_dir, args.verbose) for name, size in MODELS}
    print("\nsummary:", json.dumps(results))


if __name__ == "__main__":
    main()
