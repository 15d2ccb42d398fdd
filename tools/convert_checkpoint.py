#!/usr/bin/env python3
"""Convert PyTorch checkpoints of the joint network to safetensors for semfuse.

Reads the authors' released checkpoints (a pickled dict with 'state_dict', in torch's legacy
non-zip format of 2019 or the current zip format) WITHOUT torch: the pickle is read with the
standard library, tensors are rebuilt with numpy, and no code from the file is executed (only
a fixed list of torch/collections names is resolved; anything else becomes an inert
placeholder).

Modes (chosen automatically from the key names, or with --mode):
  official     multi-task Light-Weight RefineNet keys (layer1..8, conv3..8, crp1..4, heads);
               written unchanged (BatchNorm stays unfolded: semfuse folds it when loading).
               A 'module.' prefix (DataParallel) is stripped.
  torchvision  torchvision's ImageNet MobileNet-v2 (features.N...): mapped onto the encoder
               keys. The authors' first stage has an expand 1x1 conv even at t=1, which
               torchvision lacks; it is written as an exact identity (see --help of
               mapping below). The classifier and the final 1x1 conv are dropped. The result is
               an encoder only: semfuse cannot run it without a decoder; it is for training.
  any          every floating-point tensor, names unchanged, no checks.

Usage:
  python3 tools/convert_checkpoint.py ExpNYUD_joint.ckpt ExpNYUD_joint.safetensors
"""
import argparse
import collections
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np

from safetensors_writer import ConversionError, write_safetensors

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
BN_EPS = 1e-5




class StorageType:
    def __init__(self, name):
        self.name = name
        if name not in STORAGE_DTYPES:
            raise ConversionError(f"unsupported storage type torch.{name}")
        self.dtype = STORAGE_DTYPES[name]


class Storage:
    """A storage whose bytes may arrive after the pickle (legacy format)."""
    def __init__(self, key, storage_type, numel):
        self.key, self.type, self.numel, self.data = key, storage_type, numel, None


class LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self, name):
        s = self.storage
        if s.data is None:
            raise ConversionError(f"{name}: data of storage {s.key} is missing (truncated file?)")
        if s.type.dtype == "bfloat16":
            raw = np.frombuffer(s.data, dtype=np.uint16).astype(np.uint32) << 16
            base = raw.view(np.float32)
        else:
            base = np.frombuffer(s.data, dtype=s.type.dtype)
        count = int(np.prod(self.size)) if self.size else 1
        if count == 0:
            return np.zeros(self.size, dtype=base.dtype)
        last = self.offset + sum((d - 1) * st for d, st in zip(self.size, self.stride)) if self.size else self.offset
        if self.offset < 0 or last >= base.size:
            raise ConversionError(f"{name}: view (offset {self.offset}, size {self.size}, stride {self.stride}) "
                                  f"runs past its storage of {base.size} elements (truncated or corrupt file)")
        view = np.lib.stride_tricks.as_strided(base[self.offset:], shape=self.size,
                                               strides=[st * base.itemsize for st in self.stride])
        return np.array(view, copy=True)


class Opaque:
    """Stands in for any pickled object we do not know (optimizer state, argparse namespaces)."""
    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):
        return Opaque(*args)


def _rebuild_tensor(storage, offset, size, stride, *rest):
    return LazyTensor(storage, offset, size, stride)


def _rebuild_parameter(data, *rest):
    return data


class CheckpointUnpickler(pickle.Unpickler):
    def __init__(self, file, storages, path):
        super().__init__(file, encoding="latin1")
        self.storages, self.path = storages, path

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name.endswith("Storage"):
            return StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name == "Size":
            return tuple
        return Opaque

    def persistent_load(self, pid):
        pid = tuple(p.decode("ascii") if isinstance(p, bytes) else p for p in pid)
        if not pid or pid[0] != "storage":
            raise ConversionError(f"{self.path}: unknown persistent id {pid[:1]}")
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], pid[4]
        if not isinstance(storage_type, StorageType):
            raise ConversionError(f"{self.path}: storage {key} has an unsupported type {storage_type!r}")
        if key not in self.storages:
            self.storages[key] = Storage(key, storage_type, numel)
        return self.storages[key]


def element_size(storage_type):
    return 2 if storage_type.dtype == "bfloat16" else np.dtype(storage_type.dtype).itemsize


def load_checkpoint(path):
    """Returns the unpickled object with LazyTensors resolved to numpy arrays."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise ConversionError(f"{path}: cannot read: {e.strerror}")
    if len(blob) == 0:
        raise ConversionError(f"{path}: empty file")
    if len(blob) > 9 and blob[8:9] == b"{" and struct.unpack("<Q", blob[:8])[0] < len(blob):
        raise ConversionError(f"{path}: this is already a safetensors file; semfuse loads it directly")
    storages = {}
    if zipfile.is_zipfile(io.BytesIO(blob)):
        try:
            archive = zipfile.ZipFile(io.BytesIO(blob))
            names = archive.namelist()
            pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pkl:
                raise ConversionError(f"{path}: zip archive without data.pkl (not a torch checkpoint)")
            prefix = pkl[0][: -len("data.pkl")]
            obj = CheckpointUnpickler(io.BytesIO(archive.read(pkl[0])), storages, path).load()
            for key, s in storages.items():
                member = f"{prefix}data/{key}"
                if member not in names:
                    raise ConversionError(f"{path}: storage {key} missing from the archive")
                s.data = archive.read(member)
                if len(s.data) < s.numel * element_size(s.type):
                    raise ConversionError(f"{path}: storage {key} holds {len(s.data)} bytes, expected {s.numel * element_size(s.type)}")
        except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError) as e:
            raise ConversionError(f"{path}: corrupt zip checkpoint: {e}")
    elif blob[:1] != b"\x80":
        raise ConversionError(f"{path}: not a torch checkpoint (neither a zip archive nor a pickle)")
    else:
        f = io.BytesIO(blob)
        try:
            magic = pickle.load(f)
            if magic != LEGACY_MAGIC:
                raise ConversionError(f"{path}: not a torch checkpoint (no zip archive and no legacy magic number)")
            pickle.load(f)  # protocol version
            pickle.load(f)  # sys info
            obj = CheckpointUnpickler(f, storages, path).load()
            keys = pickle.load(f)
        except (EOFError, pickle.UnpicklingError, ValueError, struct.error) as e:
            raise ConversionError(f"{path}: truncated or corrupt legacy checkpoint: {e}")
        for key in keys:
            key = str(key)
            if key not in storages:
                raise ConversionError(f"{path}: storage {key} is listed but never referenced")
            s = storages[key]
            header = f.read(8)
            if len(header) < 8:
                raise ConversionError(f"{path}: file ends before storage {key} (truncated)")
            (numel,) = struct.unpack("<q", header)
            nbytes = numel * element_size(s.type)
            s.data = f.read(nbytes)
            if len(s.data) < nbytes:
                raise ConversionError(f"{path}: storage {key} is cut short: {len(s.data)} of {nbytes} bytes (truncated file)")
    return obj


def state_dict_of(obj, path):
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise ConversionError(f"{path}: expected a state_dict (or a dict holding 'state_dict'), found {type(obj).__name__}")
    tensors = collections.OrderedDict()
    for name, value in obj.items():
        if isinstance(value, LazyTensor):
            tensors[str(name)] = value.materialise(name)
    if not tensors:
        raise ConversionError(f"{path}: no tensors found in the checkpoint")
    return tensors


def official_expected(class_count=40, normals=False):
    keys = collections.OrderedDict()
    def bn(prefix, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{prefix}.{p}"] = (c,)
    keys["layer1.0.weight"] = (32, 3, 3, 3)
    bn("layer1.1", 32)
    cin = 32
    for s, (t, cout, n, _stride) in enumerate(STAGES):
        for b in range(n):
            hid = cin * t
            p = f"layer{s + 2}.{b}.output"
            keys[f"{p}.0.0.weight"] = (hid, cin, 1, 1); bn(f"{p}.0.1", hid)
            keys[f"{p}.1.0.weight"] = (hid, 1, 3, 3); bn(f"{p}.1.1", hid)
            keys[f"{p}.2.0.weight"] = (cout, hid, 1, 1); bn(f"{p}.2.1", cout)
            cin = cout
    for name, c in (("conv8", 320), ("conv7", 160), ("conv6", 96), ("conv5", 64), ("conv4", 32), ("conv3", 24)):
        keys[f"{name}.weight"] = (256, c, 1, 1)
    for crp in (4, 3, 2, 1):
        for i in range(1, 5):
            keys[f"crp{crp}.0.{i}_outvar_dimred.weight"] = (256, 1, 1, 1) if crp == 1 else (256, 256, 1, 1)
    for a in (4, 3, 2):
        keys[f"conv_adapt{a}.weight"] = (256, 256, 1, 1)
    heads = [("pre_depth", "depth", 1), ("pre_segm", "segm", class_count)]
    if normals:
        heads.append(("pre_normal", "normal", 3))
    for pre, head, c in heads:
        keys[f"{pre}.weight"] = (256, 1, 1, 1)
        keys[f"{head}.weight"] = (c, 256, 3, 3)
        keys[f"{head}.bias"] = (c,)
    return keys


def convert_official(tensors, path):
    tensors = collections.OrderedDict((k[7:] if k.startswith("module.") else k, v) for k, v in tensors.items())
    segm = tensors.get("segm.weight")
    classes = segm.shape[0] if segm is not None and segm.ndim == 4 else 40
    expected = official_expected(classes, "normal.weight" in tensors)
    missing = [k for k in expected if k not in tensors]
    misshaped = [f"{k} {tuple(tensors[k].shape)} (expected {expected[k]})" for k in expected
                 if k in tensors and tuple(tensors[k].shape) != expected[k]]
    extra = [k for k in tensors if k not in expected and not k.endswith("num_batches_tracked")]
    if missing or misshaped or extra:
        lines = [f"{path}: not the multi-task Light-Weight RefineNet layout:"]
        for title, names in (("missing", missing), ("mis-shaped", misshaped), ("unexpected", extra)):
            if names:
                lines.append(f"  {title} ({len(names)}): " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else ""))
        raise ConversionError("\n".join(lines))
    return collections.OrderedDict((k, tensors[k]) for k in expected), f"official ({classes} classes{', normals' if 'normal.weight' in tensors else ''})"


def convert_torchvision(tensors, path):
    """torchvision MobileNetV2 → encoder keys. features.0 = stem, features.1 = the t=1 block,
    features.2..17 = the t=6 blocks in order, features.18 + classifier are dropped."""
    out = collections.OrderedDict()
    def take(src, dst):
        if src not in tensors:
            raise ConversionError(f"{path}: torchvision key {src} missing")
        out[dst] = tensors[src]
    def bn(src, dst):
        for p in ("weight", "bias", "running_mean", "running_var"):
            take(f"{src}.{p}", f"{dst}.{p}")
    take("features.0.0.weight", "layer1.0.weight"); bn("features.0.1", "layer1.1")
    # The authors' layer2 block has an expand 1x1 (32→32) + BN + ReLU6 that torchvision omits.
    # Identity weights, and BN statistics with var + eps = 1, make it an exact no-op: its input
    # is the stem's ReLU6 output, already in [0, 6], so the ReLU6 changes nothing either.
    out["layer2.0.output.0.0.weight"] = np.eye(32, dtype=np.float32).reshape(32, 32, 1, 1)
    out["layer2.0.output.0.1.weight"] = np.ones(32, np.float32)
    out["layer2.0.output.0.1.bias"] = np.zeros(32, np.float32)
    out["layer2.0.output.0.1.running_mean"] = np.zeros(32, np.float32)
    out["layer2.0.output.0.1.running_var"] = np.full(32, 1 - BN_EPS, np.float32)
    take("features.1.conv.0.0.weight", "layer2.0.output.1.0.weight"); bn("features.1.conv.0.1", "layer2.0.output.1.1")
    take("features.1.conv.1.weight", "layer2.0.output.2.0.weight"); bn("features.1.conv.2", "layer2.0.output.2.1")
    feature = 2
    for s, (_t, _c, n, _stride) in enumerate(STAGES[1:]):
        for b in range(n):
            src, dst = f"features.{feature}.conv", f"layer{s + 3}.{b}.output"
            take(f"{src}.0.0.weight", f"{dst}.0.0.weight"); bn(f"{src}.0.1", f"{dst}.0.1")
            take(f"{src}.1.0.weight", f"{dst}.1.0.weight"); bn(f"{src}.1.1", f"{dst}.1.1")
            take(f"{src}.2.weight", f"{dst}.2.0.weight"); bn(f"{src}.3", f"{dst}.2.1")
            feature += 1
    expected = official_expected()
    for k, v in out.items():
        if tuple(v.shape) != expected[k]:
            raise ConversionError(f"{path}: {k} has shape {tuple(v.shape)}, expected {expected[k]}")
    dropped = [k for k in tensors if k.startswith("features.18") or k.startswith("classifier")]
    return out, f"torchvision MobileNet-v2 encoder (dropped {len(dropped)} classifier tensors; decoder not included)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Only floating-point tensors are written (as float32); "
                                            "integer buffers such as num_batches_tracked are skipped.")
    parser.add_argument("checkpoint", help="input .ckpt/.pth (legacy or zip torch format)")
    parser.add_argument("output", help="output .safetensors")
    parser.add_argument("--mode", choices=("auto", "official", "torchvision", "any"), default="auto")
    args = parser.parse_args(argv)
    try:
        tensors = state_dict_of(load_checkpoint(args.checkpoint), args.checkpoint)
        mode = args.mode
        if mode == "auto":
            names = list(tensors)
            mode = "torchvision" if any(n.startswith("features.") for n in names) else "official"
        if mode == "official":
            out, what = convert_official(tensors, args.checkpoint)
        elif mode == "torchvision":
            out, what = convert_torchvision(tensors, args.checkpoint)
        else:
            out, what = tensors, "all tensors, names unchanged"
        out = collections.OrderedDict((k, v) for k, v in out.items() if np.issubdtype(v.dtype, np.floating))
        for k, v in out.items():
            if not np.all(np.isfinite(v)):
                raise ConversionError(f"{args.checkpoint}: tensor {k} contains NaN or infinite values")
        write_safetensors(out, args.output, {"format": "pt", "source": os.path.basename(args.checkpoint),
                                             "converter": "semfuse tools/convert_checkpoint.py", "layout": mode})
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.output}: {len(out)} tensors, {sum(v.size for v in out.values()):,} values; {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
