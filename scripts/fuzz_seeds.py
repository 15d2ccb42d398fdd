#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora, Tests/FuzzCorpus/<target>/seed-*, from small crops of the
real files in ../shared (when present) and small hand-made files in every format variant the
readers accept, and the converters' seeds (a tiny TFLite model built here, the checkpoint
fixtures). Dev-only (needs numpy, flatbuffers and Pillow); the
seeds are committed, so neither the build nor the tests need this script.

Usage: python3 scripts/fuzz_seeds.py [shared-dir]
"""
import io
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import flatbuffers
import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "Tests", "FuzzCorpus")
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(ROOT), "shared")
DATA = os.path.join(SHARED, "data")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def image(source, box, save, **options):
    """A crop of a real image, re-encoded by Pillow, as bytes (None when the source is absent)."""
    if not os.path.exists(source):
        return None
    with Image.open(source) as img:
        out = io.BytesIO()
        save(img.crop(box)).save(out, **options)
        return out.getvalue()


def npy(array, fortran=False):
    descr = {np.float32: "<f4", np.float16: "<f2", np.uint8: "|u1"}[array.dtype.type]
    shape = "(%s)" % (", ".join(map(str, array.shape)) + ("," if array.ndim == 1 else ""))
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + array.tobytes(order="F" if fortran else "C")


def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def tiny_tflite():
    """A 4x4 RGB → 1-channel depth model: one quantised CONV_2D with 8-bit weights, in the
    TFLite flatbuffer schema (Model, SubGraph, Tensor, Operator, Buffer tables)."""
    b = flatbuffers.Builder(1024)
    def vec_bytes(data):
        return b.CreateByteVector(bytes(data))
    def vec(values, fmt):
        size = struct.calcsize(fmt)
        b.StartVector(size, len(values), size)
        for v in reversed(values):
            {"i": b.PrependInt32, "f": b.PrependFloat32, "q": b.PrependInt64}[fmt](v)
        return b.EndVector()
    def offsets(items):
        b.StartVector(4, len(items), 4)
        for o in reversed(items):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()
    def quant(scale, zero):
        s, z = vec(scale, "f"), vec(zero, "q")
        b.StartObject(7); b.PrependUOffsetTRelativeSlot(2, s, 0); b.PrependUOffsetTRelativeSlot(3, z, 0)
        return b.EndObject()
    # buffers: 0 empty (convention), 1 weights, 2 bias
    bufs = []
    for data in [None, np.array([[[[40, -20, 10]]]], np.int8).tobytes(), np.array([5], np.int32).tobytes()]:
        d = vec_bytes(data) if data else None
        b.StartObject(3)
        if d: b.PrependUOffsetTRelativeSlot(0, d, 0)
        bufs.append(b.EndObject())
    tensors = []
    for name, shape, ttype, buf, q in [("input", [1, 4, 4, 3], 3, 0, ([1 / 128], [128])),
                                       ("weights", [1, 1, 1, 3], 9, 1, ([0.01], [0])),
                                       ("bias", [1], 2, 2, ([1 / 12800], [0])),
                                       ("depth", [1, 4, 4, 1], 3, 0, ([0.05], [0]))]:
        n = b.CreateString(name); sh = vec(shape, "i"); qq = quant(*q)
        b.StartObject(6)
        b.PrependUOffsetTRelativeSlot(0, sh, 0); b.PrependInt8Slot(1, ttype, 0); b.PrependUint32Slot(2, buf, 0)
        b.PrependUOffsetTRelativeSlot(3, n, 0); b.PrependUOffsetTRelativeSlot(4, qq, 0)
        tensors.append(b.EndObject())
    # Conv2DOptions: padding SAME(0), stride 1, activation NONE
    b.StartObject(6); b.PrependInt32Slot(1, 1, 0); b.PrependInt32Slot(2, 1, 0); conv_options = b.EndObject()
    ins, outs = vec([0, 1, 2], "i"), vec([3], "i")
    b.StartObject(5)
    b.PrependUint32Slot(0, 0, 0); b.PrependUOffsetTRelativeSlot(1, ins, 0); b.PrependUOffsetTRelativeSlot(2, outs, 0)
    b.PrependUint8Slot(3, 1, 0); b.PrependUOffsetTRelativeSlot(4, conv_options, 0)
    op = b.EndObject()
    t, gi, go, ops = offsets(tensors), vec([0], "i"), vec([3], "i"), offsets([op])
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, t, 0); b.PrependUOffsetTRelativeSlot(1, gi, 0); b.PrependUOffsetTRelativeSlot(2, go, 0)
    b.PrependUOffsetTRelativeSlot(3, ops, 0)
    sub = b.EndObject()
    b.StartObject(4); b.PrependInt8Slot(0, 3, 0); b.PrependInt32Slot(2, 1, 1); b.PrependInt32Slot(3, 3, 0); code = b.EndObject()
    codes, subs, bv = offsets([code]), offsets([sub]), offsets(bufs)
    b.StartObject(6)
    b.PrependUint32Slot(0, 3, 0); b.PrependUOffsetTRelativeSlot(1, codes, 0); b.PrependUOffsetTRelativeSlot(2, subs, 0)
    b.PrependUOffsetTRelativeSlot(4, bv, 0)
    model = b.EndObject()
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def main():
    if os.path.isdir(CORPUS):
        for target in os.listdir(CORPUS):
            for name in os.listdir(os.path.join(CORPUS, target)):
                if name.startswith("seed-"):
                    os.remove(os.path.join(CORPUS, target, name))
    kitchen = os.path.join(DATA, "7scenes-redkitchen-png50")
    color, depth = os.path.join(kitchen, "frame-000150.color.png"), os.path.join(kitchen, "frame-000150.depth.png")
    jpeg = os.path.join(DATA, "7scenes-redkitchen", "frame-000005.color.jpg")
    labels = os.path.join(ROOT, "Tests", "NetworkTests", "Fixtures", "tflite", "argmax-128-7scenes-000000.png")

    box = (300, 200, 316, 212)
    same = lambda img: img
    for target in ["png-rgb", "png-gray8", "png-gray16"]:
        for name, data in [
            ("color.png", image(color, box, lambda i: i.convert("RGB"), format="PNG")),
            ("color-interlaced.png", image(color, box, lambda i: i.convert("RGB"), format="PNG", interlace=1)),
            ("color-palette.png", image(color, box, lambda i: i.convert("RGB").quantize(16), format="PNG")),
            ("color-alpha.png", image(color, box, lambda i: i.convert("RGBA"), format="PNG")),
            ("depth16.png", image(depth, box, same, format="PNG")),
            ("labels8.png", image(labels, (40, 40, 56, 52), lambda i: i.convert("L"), format="PNG")),
            ("gray1.png", image(labels, (40, 40, 56, 52), lambda i: i.convert("1"), format="PNG")),
        ]:
            if data is not None:
                write(target, name, data)
    jbox = (300, 200, 316, 216)
    for name, save, options in [("baseline.jpg", same, {}), ("progressive.jpg", same, {"progressive": True}),
                                ("gray.jpg", lambda i: i.convert("L"), {}), ("444.jpg", same, {"subsampling": 0})]:
        data = image(jpeg, jbox, save, format="JPEG", quality=85, **options)
        if data is not None:
            write("jpeg", name, data)

    rng = np.random.default_rng(9)
    write("npy", "f4.npy", npy(rng.random((2, 3, 4)).astype(np.float32)))
    write("npy", "f2.npy", npy(rng.random((5,)).astype(np.float16)))
    write("npy", "u1.npy", npy((rng.random((3, 3)) * 255).astype(np.uint8)))
    write("npy", "empty.npy", npy(np.zeros((13, 0, 0), np.float32)))
    write("npy", "fortran.npy", npy(np.arange(6, dtype=np.float32).reshape(2, 3), fortran=True))
    cmap = os.path.join(DATA, "nyuv2", "cmap_nyud.npy")
    if os.path.exists(cmap):
        with open(cmap, "rb") as f:
            write("npy", "cmap_nyud.npy", f.read())

    props = ["x", "y", "z", "nx", "ny", "nz"]
    body = [(0.1, 0.2, 0.3, 0, 0, 1, 255, 0, 0, 3, 0.9), (1.5, -2, 0.25, 0, 1, 0, 0, 255, 10, 255, 0.5)]
    header = "ply\nformat %s 1.0\ncomment class_set nyu13\nelement vertex 2\n" + "".join("property float %s\n" % p for p in props)
    header += "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty int label\nproperty float label_confidence\n"
    write("ply", "ascii.ply", (header % "ascii") + "end_header\n" + "".join(" ".join(map(str, v)) + "\n" for v in body))
    for fmt, end in [("binary_little_endian", "<"), ("binary_big_endian", ">")]:
        raw = b"".join(struct.pack(end + "6f3Bif", *v) for v in body)
        write("ply", fmt + ".ply", ((header % fmt) + "end_header\n").encode() + raw)
    faces = "ply\nformat binary_little_endian 1.0\nelement camera 1\nproperty double t\nelement vertex 1\nproperty double x\nproperty double y\nproperty double z\nproperty float prob_0\nproperty float prob_1\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
    write("ply", "elements.ply", faces.encode() + struct.pack("<4d2f", 7, 1, 2, 3, 0.25, 0.75) + struct.pack("<B3i", 3, 0, 0, 0))
    # A surfel map to mesh: a sparse cap of a sphere (coarsened) beside a dense patch, labelled.
    surfels = []
    for i in range(160):
        y = 1 - (i + 0.5) / 160
        r, phi = math.sqrt(1 - y * y), i * math.pi * (3 - math.sqrt(5))
        n = (r * math.cos(phi), y, r * math.sin(phi))
        surfels.append((0.1 * n[0], 0.1 * n[1], 1 + 0.1 * n[2], *n, 0.015, 3.0, i % 3))
    for i in range(12):
        for j in range(12):
            surfels.append((0.2 + 0.004 * i, 0.004 * j, 1.1, 0, 0, -1, 0.003, 5.0, 4))
    header = "ply\nformat binary_little_endian 1.0\ncomment class_set nyu13\nelement vertex %d\n" % len(surfels)
    header += "".join("property float %s\n" % p for p in ["x", "y", "z", "nx", "ny", "nz", "radius", "confidence"])
    header += "property int label\nend_header\n"
    write("mesh", "surfels.ply", header.encode() + b"".join(struct.pack("<8fi", *s) for s in surfels))

    f32 = struct.pack("<4f", 1, -2, 3.5, 0)
    write("safetensors", "mixed.safetensors", safetensors({
        "a": ("F32", [2, 2], f32), "h": ("F16", [2], struct.pack("<2e", 0.5, -1)), "b": ("BF16", [1], b"\x80\x3f"),
        "n": ("I64", [], struct.pack("<q", 3)), "u": ("U8", [3], b"\x01\x02\x03"), "d": ("F64", [1], struct.pack("<d", 2.5)),
        "e": ("F32", [0, 4], b"")}, {"format": "pt"}))
    model = os.path.join(ROOT, "Models", "fastdepth-nyu.safetensors")
    with open(model, "rb") as f:   # the real header, its tensors cut to their first bytes
        length = struct.unpack("<Q", f.read(8))[0]
        real = json.loads(f.read(length))
    meta = real.pop("__metadata__", {})
    first = sorted(real, key=lambda k: real[k]["data_offsets"][0])[:3]
    kept = {k: (real[k]["dtype"], real[k]["shape"], b"\x01" * (real[k]["data_offsets"][1] - real[k]["data_offsets"][0])) for k in first}
    if sum(len(v[2]) for v in kept.values()) < 4096:
        write("safetensors", "fastdepth-head.safetensors", safetensors(kept, meta))
        write("graph", "fastdepth-head.safetensors", safetensors(kept, meta))

    def graph(ops, tensors, weights, kind="depth", role="depth", height=4):
        g = {"input": {"tensor": "t0", "height": height, "width": 4, "channels": 3, "scale": 0.0078125, "zero_point": 128},
             "outputs": [{"tensor": "t9", "role": role}], "tensors": tensors, "ops": ops}
        meta = {"semfuse.format": "graph-v1", "semfuse.kind": kind, "semfuse.graph": json.dumps(g)}
        if kind == "segmenter":
            meta["semfuse.class_set"] = "ade20k"
        return safetensors(weights, meta)

    conv = {"c1": ("F32", [2, 1, 1, 3], struct.pack("<6f", 1, 0, 0, 0, 1, 0)), "c2": ("F32", [2], struct.pack("<2f", 0.5, -0.5))}
    write("graph", "conv.safetensors", graph(
        [{"op": "CONV_2D", "inputs": ["t0", "c1", "c2"], "outputs": ["t9"], "stride": [1, 1], "padding": "SAME", "clamp": [0, 6]}],
        {"t0": {"shape": [1, 4, 4, 3]}, "t9": {"shape": [1, 4, 4, 2]}}, conv))
    quant = {"c1": ("I8", [3, 3, 3, 1], bytes(range(27))), "c1_scale": ("F32", [1], struct.pack("<f", 0.01)),
             "c1_zero_point": ("F32", [1], struct.pack("<f", 0))}
    write("graph", "depthwise-resize.safetensors", graph(
        [{"op": "DEPTHWISE_CONV_2D", "inputs": ["t0", "c1"], "outputs": ["t1"], "stride": [2, 2], "padding": "SAME"},
         {"op": "RESIZE_BILINEAR", "inputs": ["t1"], "outputs": ["t2"], "size": {"scale": [2, 2]}},
         {"op": "ADD", "inputs": ["t2", "t0"], "outputs": ["t3"]},
         {"op": "MEAN", "inputs": ["t3"], "outputs": ["t9"], "axes": [3]}],
        {"t0": {"shape": [1, 4, 4, 3]}}, quant))
    write("graph", "segmenter.safetensors", graph(
        [{"op": "AVERAGE_POOL_2D", "inputs": ["t0"], "outputs": ["t1"], "kernel": [2, 2], "stride": [1, 1], "padding": "VALID"},
         {"op": "PAD", "inputs": ["t1"], "outputs": ["t2"], "paddings": [[0, 0], [1, 0], [0, 1], [0, 0]]},
         {"op": "CONCATENATION", "inputs": ["t2", "t0"], "outputs": ["t3"], "axis": 3},
         {"op": "RESHAPE", "inputs": ["t3"], "outputs": ["t9"], "shape": [1, 4, 4, 6]}],
        {}, {"w": ("F32", [1], struct.pack("<f", 1))}, kind="segmenter", role="logits"))

    model = tiny_tflite()
    write("convert-tflite", "tiny.tflite", model)
    with tempfile.TemporaryDirectory() as tmp:   # the same model through the converter: a real graph-v1 file
        with open(os.path.join(tmp, "tiny.tflite"), "wb") as f:
            f.write(model)
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert_tflite.py"), os.path.join(tmp, "tiny.tflite"),
                        os.path.join(tmp, "tiny.safetensors")], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(tmp, "tiny.safetensors"), "rb") as f:
            write("graph", "converted-tiny.safetensors", f.read())
    for name in ["fixture-legacy.ckpt", "fixture-zip.ckpt"]:
        with open(os.path.join(ROOT, "Tests", "NetworkTests", "Fixtures", name), "rb") as f:
            write("convert-checkpoint", name, f.read())

    write("tum-list", "rgb.txt", "# color images\n# file: 'rgbd_dataset_freiburg1_xyz.bag'\n# timestamp filename\n1.000000 rgb/1.png\n1.033000 rgb/2.png\n")
    write("tum-list", "one.txt", "1.0012 rgb/2.png extra\n")
    write("tum-groundtruth", "groundtruth.txt", "# ground truth trajectory\n# timestamp tx ty tz qx qy qz qw\n0.9900 1.3405 0.6266 1.6575 0.6574 0.6126 -0.2949 -0.3248\n1.0100 1.3303 0.6256 1.6464 0.6579 0.6161 -0.2932 -0.3189\n1.0400 1.3160 0.6254 1.6302 0.6609 0.6199 -0.2893 -0.3086\n")
    for name, path in [("7scenes-pose", os.path.join(kitchen, "frame-000150.pose.txt")),
                       ("7scenes-intrinsics", os.path.join(kitchen, "camera-intrinsics.txt")),
                       ("intrinsics", os.path.join(kitchen, "camera-intrinsics.txt"))]:
        if os.path.exists(path):
            with open(path, "rb") as f:
                write(name, os.path.basename(path), f.read())
    write("7scenes-pose", "identity.txt", "1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    write("7scenes-intrinsics", "small.txt", "3.6 0 2\n0 3.6 1.5\n0 0 1\n")
    icl = os.path.join(DATA, "icl-nuim-livingroom5", "pose.txt")
    if os.path.exists(icl):
        with open(icl) as f:
            write("icl-pose", "pose.txt", "".join(f.readlines()[:3]))
    write("intrinsics", "line.txt", "585 585 320 240\n")
    write("intrinsics", "sized.txt", "481.2, -480, 319.5, 239.5, 640, 480\n")
    base = {"format": "semfuse-sequence", "version": 1, "name": "fuzz", "depth_scale": 1000, "class_set": "nyu13",
            "intrinsics": {"fx": 3.6, "fy": 3.6, "cx": 2, "cy": 1.5, "width": 4, "height": 3}, "poses": "poses.txt",
            "frames": [{"timestamp": 0, "rgb": "rgb.png", "depth": "depth.png", "labels": "labels.png", "probabilities": "probabilities.npy"}]}
    write("manifest", "full.json", json.dumps(base, indent=1))
    small = {k: v for k, v in base.items() if k not in ("poses", "class_set")}
    small["frames"] = [{"timestamp": 0.5, "rgb": "rgb.png"}]
    small["notes"], small["generator"] = ["a note"], {"tool": "fuzz_seeds.py"}
    write("manifest", "minimal.json", json.dumps(small))
    recording_seeds()


def recording_seeds():
    """Seeds of the recording readers (.klg logs, ScanNet .sens scans), built from the committed
    JPEG and PNG seeds with struct and zlib only: every colour and depth variant each format
    allows, a truncated log, a -inf pose and the IMU section after the frames."""
    def corpus(target, name):
        with open(os.path.join(CORPUS, target, "seed-" + name), "rb") as f:
            return f.read()

    jpeg16 = corpus("jpeg", "baseline.jpg")  # 16x16
    png16x12 = corpus("png-rgb", "color.png")  # 16x12 RGB

    def depth(w, h, base=800):
        return b"".join(struct.pack("<H", (base + 37 * i) % 5000) for i in range(w * h))

    def klg(frames, declared=None):
        out = struct.pack("<i", len(frames) if declared is None else declared)
        for t, d, c in frames:
            out += struct.pack("<qii", t, len(d), len(c)) + d + c
        return out

    write("klg", "jpeg.klg", klg([(33000, zlib.compress(depth(16, 16), 1), jpeg16),
                                  (66000, zlib.compress(depth(16, 16, 900), 1), jpeg16)]))
    write("klg", "raw.klg", klg([(0, depth(8, 6), bytes(range(144)))]))
    write("klg", "depth-only.klg", klg([(5, zlib.compress(depth(16, 12)), b"")]))
    write("klg", "truncated.klg", klg([(1, zlib.compress(depth(16, 16)), jpeg16)] * 2, declared=3))

    def mat(values):
        return struct.pack("<16f", *values)

    def intr(fx, fy, cx, cy):
        return mat([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0, 0, 0, 0, 1])

    identity = mat([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])
    inf = mat([float("-inf")] * 16)

    def sens(color_type, depth_type, color_size, depth_size, k_color, k_depth, frames, imu=True, version=4):
        out = struct.pack("<IQ", version, 6) + b"fuzzer"
        out += k_color + identity + k_depth + identity
        out += struct.pack("<iiIIIIfQ", color_type, depth_type, color_size[0], color_size[1],
                           depth_size[0], depth_size[1], 1000.0, len(frames))
        for pose, c, d in frames:
            out += pose + struct.pack("<QQQQ", 0, 0, len(c), len(d)) + c + d
        if imu:
            out += struct.pack("<Q", 0)
        return out

    write("sens", "jpeg.sens", sens(2, 1, (16, 16), (8, 8), intr(14, 14, 7.5, 7.5), intr(7, 7, 3.5, 3.5),
                                    [(identity, jpeg16, zlib.compress(depth(8, 8))),
                                     (inf, jpeg16, zlib.compress(depth(8, 8, 1200)))]))
    write("sens", "png.sens", sens(1, 0, (16, 12), (16, 12), intr(14, 14, 8, 6), intr(14, 14, 8, 6),
                                   [(identity, png16x12, depth(16, 12))], imu=False))
    write("sens", "raw.sens", sens(0, 1, (8, 6), (8, 6), intr(7, 7, 4, 3), intr(7, 7, 4, 3),
                                   [(identity, bytes(range(144)), zlib.compress(depth(8, 6)))]))


if __name__ == "__main__":
    main()
