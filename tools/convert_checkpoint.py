#!/usr/bin/env python3
"""Convert PyTorch checkpoints of the joint network to safetensors for semfuse.

Reads the authors' released checkpoints (a pickled dict with 'state_dict', in torch's legacy
non-zip format of 2019 or the current zip format) WITHOUT torch: the pickle is read with the
standard library, tensors are rebuilt with numpy, and no code from the file is executed. Every
pickle in the file (the legacy header records included) goes through one restricted
unpickler: torch's tensor and storage names are resolved to inert stand-ins, a few plain data
types (argparse namespaces, numpy scalars) become placeholders, and any other global is
refused, naming it. Declared lengths, storage sizes and tensor views are checked against the
bytes actually present before anything is allocated.

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
import math
import os
import pickle
import pickletools
import struct
import sys
import zipfile
import zlib

import numpy as np

from safetensors_writer import ConversionError, check_output, write_safetensors

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
BN_EPS = 1e-5
# Globals of plain data found in training checkpoints (hyper-parameters, epoch counters, numpy
# scalars): each becomes an inert Opaque placeholder. Everything else not resolved in
# CheckpointUnpickler.find_class is refused: through a global, a pickle can call any function.
PLACEHOLDER_GLOBALS = {
    ("argparse", "Namespace"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"), ("torch", "device"),
    ("builtins", "set"), ("builtins", "frozenset"), ("__builtin__", "set"),
}
# A data.pkl holds names and small numbers (kilobytes for a network); more is not a checkpoint.
MAX_PICKLE_BYTES = 256 << 20
# A deflated zip member cannot inflate more than ~1032x; a larger declared size is a lie.
MAX_DEFLATE_RATIO = 1100
# Views may read storage elements more than once (stride 0); materialising one is capped here.
MAX_OVERLAPPING_VIEW = 1 << 24
MAX_DIMENSIONS = 32



class Inert:
    """The converter's own stand-ins refuse the pickle BUILD opcode, which would otherwise
    overwrite their checked fields (a storage's dtype, a view's offset) with anything."""
    def __setstate__(self, state):
        raise ConversionError(f"the pickle tries to set the state of a {type(self).__name__}")


class StorageType(Inert):
    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class Storage(Inert):
    """A storage whose bytes may arrive after the pickle (legacy format)."""
    def __init__(self, key, storage_type, numel):
        self.key, self.type, self.numel, self.data = key, storage_type, numel, None


def is_int(value):
    return type(value) is int  # not bool, not float, not a placeholder


def short(value, limit=80):
    """A value for an error message (text as it is, anything else as its repr), cut at `limit`."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class LazyTensor(Inert):
    """A tensor view as the pickle declares it; nothing of it is trusted until materialise()."""
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialise(self, path, name):
        where = f"{path}: tensor {name}"
        s, offset = self.storage, self.offset
        if not isinstance(s, Storage):
            raise ConversionError(f"{where}: its storage is {short(s)}, not tensor data (corrupt file)")
        if s.data is None:
            raise ConversionError(f"{where}: data of storage {s.key} is missing (truncated file?)")
        size = tuple(self.size) if isinstance(self.size, (tuple, list)) else None
        stride = tuple(self.stride) if isinstance(self.stride, (tuple, list)) else None
        if size is None or not all(is_int(d) and 0 <= d < 1 << 62 for d in size) or len(size) > MAX_DIMENSIONS:
            raise ConversionError(f"{where}: size {short(self.size)} is not a list of at most {MAX_DIMENSIONS} integers in 0..2^62 "
                                  "(corrupt file)")
        if stride is None or len(stride) != len(size) or not all(is_int(st) and 0 <= st < 1 << 62 for st in stride):
            raise ConversionError(f"{where}: stride {short(self.stride)} does not give one integer in 0..2^62 "
                                  f"per dimension of size {size} (corrupt file)")
        if not is_int(offset) or not 0 <= offset < 1 << 62:
            raise ConversionError(f"{where}: storage offset {short(offset)} is not an integer in 0..2^62 (corrupt file)")
        itemsize = element_size(s.type)
        stored = len(s.data) // itemsize
        count = math.prod(size)
        if count == 0:
            return np.zeros(size, dtype=np.float32 if s.type.dtype == "bfloat16" else s.type.dtype)
        last = offset + sum((d - 1) * st for d, st in zip(size, stride))
        if last >= stored:
            raise ConversionError(f"{where}: view (offset {offset}, size {size}, stride {stride}) "
                                  f"runs past its storage of {stored} elements (truncated or corrupt file)")
        if count > max(stored, MAX_OVERLAPPING_VIEW):
            raise ConversionError(f"{where}: view of {count} elements reads a storage of only {stored} "
                                  f"(overlapping views are limited to {MAX_OVERLAPPING_VIEW} elements; corrupt file?)")
        if s.type.dtype == "bfloat16":
            base = (np.frombuffer(s.data, dtype=np.uint16, count=stored).astype(np.uint32) << 16).view(np.float32)
        else:
            base = np.frombuffer(s.data, dtype=s.type.dtype, count=stored)
        view = np.lib.stride_tricks.as_strided(base[offset:], shape=size, strides=[st * base.itemsize for st in stride])
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
    """The only unpickler the converter uses. `storages` is None for records that hold no
    tensors (the legacy header and storage key list): a tensor reference there is refused."""
    def __init__(self, file, storages, path):
        super().__init__(file, encoding="latin1")
        self.storages, self.path = storages, path

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name.endswith("Storage"):
            if name not in STORAGE_DTYPES:
                raise ConversionError(f"{self.path}: unsupported storage type torch.{name}")
            return StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name == "Size":
            return tuple
        if (module, name) in PLACEHOLDER_GLOBALS:
            return Opaque
        raise ConversionError(f"{self.path}: the pickle refers to the global {module}.{name}, which is not on "
                              "the converter's allow-list (torch tensors and storages, OrderedDict, plain data); "
                              "refused, since through such a name a pickle can run code")

    def persistent_load(self, pid):
        if self.storages is None:
            raise ConversionError(f"{self.path}: a tensor data reference where the format has none (corrupt file)")
        if not isinstance(pid, tuple) or len(pid) < 5:
            raise ConversionError(f"{self.path}: malformed storage reference {short(pid)}")
        pid = tuple(p.decode("ascii", "replace") if isinstance(p, bytes) else p for p in pid)
        tag, storage_type, key, _location, numel = pid[:5]
        if tag != "storage":
            raise ConversionError(f"{self.path}: unknown persistent id {short(tag)}")
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise ConversionError(f"{self.path}: storage key {short(key)} is not a name")
        key = str(key)
        if not isinstance(storage_type, StorageType):
            raise ConversionError(f"{self.path}: storage {key} has an unsupported type {short(storage_type)}")
        if not is_int(numel) or numel < 0:
            raise ConversionError(f"{self.path}: storage {key} declares {short(numel)} elements (corrupt file)")
        if len(pid) > 5 and pid[5] is not None:
            raise ConversionError(f"{self.path}: storage {key} is a view into another storage (torch before 0.4), "
                                  "which the converter does not read")
        existing = self.storages.get(key)
        if existing is None:
            self.storages[key] = Storage(key, storage_type, numel)
        elif existing.type.name != storage_type.name or existing.numel != numel:
            raise ConversionError(f"{self.path}: storage {key} is declared twice, differently "
                                  f"({existing.type.name} x {existing.numel}, {storage_type.name} x {numel})")
        return self.storages[key]


def unpickle(f, path, what, storages=None):
    """One pickle record from `f` through CheckpointUnpickler. A scan with pickletools first
    checks every declared length against the bytes present (the C unpickler allocates a
    declared length before reading it) and finds the record's end; then the restricted load.
    Any failure is a ConversionError naming the file and the record."""
    start = f.tell()
    try:
        for _ in pickletools.genops(f):
            pass
    except Exception as e:  # pickletools raises ValueError and others on malformed data
        raise ConversionError(f"{path}: truncated or corrupt {what}: {short(str(e), 200)}")
    end = f.tell()
    f.seek(start)
    try:
        obj = CheckpointUnpickler(f, storages, path).load()
    except ConversionError:
        raise
    except Exception as e:  # pickle raises many types on crafted data (TypeError, KeyError, ...)
        raise ConversionError(f"{path}: truncated or corrupt {what}: {type(e).__name__}: {short(str(e), 200)}")
    f.seek(end)
    return obj


def read_member(archive, name, expected, path, what):
    """`expected` bytes of zip member `name`, refusing sizes the member cannot hold before
    inflating anything; reads no more than `expected`."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ConversionError(f"{path}: {what} missing from the archive")
    stored = info.compress_type == zipfile.ZIP_STORED
    if info.file_size < expected:
        raise ConversionError(f"{path}: {what} holds {info.file_size} bytes, expected {expected}")
    if expected > (info.compress_size if stored else MAX_DEFLATE_RATIO * max(1, info.compress_size)):
        raise ConversionError(f"{path}: {what} declares {info.file_size} bytes but the archive holds only "
                              f"{info.compress_size} for it (corrupt file)")
    with archive.open(info) as member:
        data = member.read(expected)
    if len(data) < expected:
        raise ConversionError(f"{path}: {what} is cut short: {len(data)} of {expected} bytes (truncated file)")
    return data


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
    try:
        is_zip = zipfile.is_zipfile(io.BytesIO(blob))
    except (zipfile.BadZipFile, ValueError, OverflowError, struct.error) as e:  # is_zipfile raises on some records
        raise ConversionError(f"{path}: corrupt zip checkpoint: {short(str(e), 200)}")
    if is_zip:
        try:
            archive = zipfile.ZipFile(io.BytesIO(blob))
            names = archive.namelist()
            pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pkl:
                raise ConversionError(f"{path}: zip archive without data.pkl (not a torch checkpoint)")
            prefix = pkl[0][: -len("data.pkl")]
            size = archive.getinfo(pkl[0]).file_size
            if size > MAX_PICKLE_BYTES:
                raise ConversionError(f"{path}: {pkl[0]} declares {size} bytes; a checkpoint's pickle is far smaller "
                                      f"(limit {MAX_PICKLE_BYTES}): corrupt file")
            obj = unpickle(io.BytesIO(read_member(archive, pkl[0], size, path, pkl[0])), path, pkl[0], storages)
            for key, s in storages.items():
                s.data = read_member(archive, f"{prefix}data/{key}", s.numel * element_size(s.type), path, f"storage {key}")
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
                ValueError, OverflowError, OSError) as e:
            raise ConversionError(f"{path}: corrupt zip checkpoint: {short(str(e), 200)}")
    elif blob[:1] != b"\x80":
        raise ConversionError(f"{path}: not a torch checkpoint (neither a zip archive nor a pickle)")
    else:
        # Five pickle records, each through the restricted unpickler: magic number, protocol
        # version, sys info, the object, the storage keys; then each storage's bytes.
        f = io.BytesIO(blob)
        magic = unpickle(f, path, "legacy checkpoint (magic number)")
        if not is_int(magic) or magic != LEGACY_MAGIC:
            raise ConversionError(f"{path}: not a torch checkpoint (no zip archive and no legacy magic number)")
        unpickle(f, path, "legacy checkpoint (protocol version)")
        unpickle(f, path, "legacy checkpoint (sys info)")
        obj = unpickle(f, path, "legacy checkpoint", storages)
        keys = unpickle(f, path, "legacy checkpoint (storage keys)")
        if not isinstance(keys, list):
            raise ConversionError(f"{path}: the storage key list is {short(keys)} (corrupt file)")
        for key in keys:
            key = str(key) if isinstance(key, (str, int)) and not isinstance(key, bool) else None
            if key not in storages:
                raise ConversionError(f"{path}: storage {key} is listed but never referenced")
            s = storages[key]
            if s.data is not None:
                raise ConversionError(f"{path}: storage {key} is listed twice (corrupt file)")
            header = f.read(8)
            if len(header) < 8:
                raise ConversionError(f"{path}: file ends before storage {key} (truncated)")
            (numel,) = struct.unpack("<q", header)
            if numel != s.numel:
                raise ConversionError(f"{path}: storage {key} holds {numel} elements but the pickle declared {s.numel} (corrupt file)")
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
            tensors[str(name)] = value.materialise(path, name)
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
        check_output(args.output, inputs=[args.checkpoint])  # before any work
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
