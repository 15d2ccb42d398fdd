#!/usr/bin/env python3
"""Writes hostile torch checkpoints for ConverterTests (no torch needed): each the smallest file
that shows one defect family of tools/convert_checkpoint.py.

  python3 crafted_checkpoints.py OUT_DIR MARKER_PATH

Pickles name torch's globals (torch.FloatStorage, torch._utils._rebuild_tensor_v2) through
stand-in modules registered under those names, so the bytes are what torch.save writes.
Files written (legacy = torch's pre-1.6 format of five pickles then raw storages):
  system-in-magic.ckpt     legacy; the magic-number record calls posix.system("touch MARKER")
  system-in-sysinfo.ckpt   legacy; valid magic and protocol, the sys-info record calls it
  system-in-zip.ckpt       zip; data.pkl calls it
  view-negative-stride.ckpt, view-negative-size.ckpt, view-float-size.ckpt,
  view-past-storage.ckpt, view-huge-count.ckpt, view-huge-offset.ckpt   legacy, one crafted view each
  storage-numel-mismatch.ckpt   legacy; the raw storage header disagrees with the pickle
  zip-missing-member.ckpt   zip without the storage's data member
  zip-oversized-member.ckpt zip whose storage member declares 4 GiB it does not hold
  zip-multi-disk.ckpt       zip whose zip64 locator declares a multi-disk archive
"""
import io
import os
import pickle
import struct
import sys
import types
import zipfile

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")


class FloatStorage:
    pass


FloatStorage.__module__ = "torch"
torch.FloatStorage = FloatStorage


def _rebuild_tensor_v2(*args):
    raise AssertionError("never called here")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
sys.modules["torch"], sys.modules["torch._utils"] = torch, torch_utils


class StorageRef:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class Tensor:
    """Pickles as torch does: _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)."""
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, {})

    def __reduce__(self):
        return (_rebuild_tensor_v2, self.args)


class System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class Pickler(pickle.Pickler):
    def __init__(self, file, legacy):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            ref = ("storage", FloatStorage, obj.key, "cpu", obj.numel)
            return ref + (None,) if self.legacy else ref
        return None


def dumps(obj, legacy=True):
    f = io.BytesIO()
    Pickler(f, legacy).dump(obj)
    return f.getvalue()


def legacy(obj, storages, magic=LEGACY_MAGIC, sys_info=None, header_numel=None):
    """storages: {key: float32 values}."""
    out = dumps(magic) + dumps(1001) + dumps(sys_info if sys_info is not None else {"little_endian": True})
    out += dumps(obj) + dumps(list(storages))
    for key, values in storages.items():
        out += struct.pack("<q", header_numel if header_numel is not None else len(values))
        out += struct.pack(f"<{len(values)}f", *values)
    return out


def zipped(obj, members):
    f = io.BytesIO()
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", dumps(obj, legacy=False))
        for key, data in members.items():
            z.writestr(f"archive/data/{key}", data)
    return f.getvalue()


def view(offset, size, stride, numel=4):
    return legacy({"w": Tensor(StorageRef("0", numel), offset, size, stride)}, {"0": [1.0] * numel})


def main(out, marker):
    system = System(f"touch {marker}")
    files = {
        "system-in-magic.ckpt": dumps(system) + dumps(1001),
        "system-in-sysinfo.ckpt": dumps(LEGACY_MAGIC) + dumps(1001) + dumps(system),
        "system-in-zip.ckpt": zipped({"w": system}, {}),
        "view-negative-stride.ckpt": view(3, (2,), (-1,)),
        "view-negative-size.ckpt": view(0, (-2, 2), (2, 1)),
        "view-float-size.ckpt": view(0, (2.5,), (1,)),
        "view-past-storage.ckpt": view(2, (2, 2), (2, 1)),
        "view-huge-count.ckpt": view(0, (1 << 40, 1 << 40), (0, 0)),
        "view-huge-offset.ckpt": view(1 << 70, (1,), (1,)),
        "storage-numel-mismatch.ckpt": legacy({"w": Tensor(StorageRef("0", 4), 0, (4,), (1,))}, {"0": [1.0] * 4},
                                              header_numel=-1),
        "zip-missing-member.ckpt": zipped({"w": Tensor(StorageRef("0", 4), 0, (4,), (1,))}, {}),
    }
    oversized = zipped({"w": Tensor(StorageRef("0", 1 << 29), 0, (4,), (1,))}, {"0": b"\0" * 16})
    # The pickle declares 2^29 floats (2 GiB); patch the member's uncompressed size (local header
    # offset 22, central directory offset 24) to just under 4 GiB: the archive claims bytes it
    # does not hold, and the converter must refuse before inflating or allocating any of them.
    patched = bytearray(oversized)
    for signature, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := patched.find(signature, start)) >= 0:
            name_length = struct.unpack_from("<H", patched, start + (26 if signature == b"PK\x03\x04" else 28))[0]
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if bytes(patched[name_at:name_at + name_length]) == b"archive/data/0":
                struct.pack_into("<I", patched, start + at, 0xFFFFFFFF - 1)
            start += 4
    files["zip-oversized-member.ckpt"] = bytes(patched)
    # A zip64 end-of-central-directory locator (20 bytes right before the end record) declaring 2
    # disks: zipfile.is_zipfile raised BadZipFile out of the converter (found by mutation fuzzing).
    plain = zipped({"w": Tensor(StorageRef("0", 4), 0, (4,), (1,))}, {"0": b"\0" * 16})
    end = plain.rfind(b"PK\x05\x06")
    files["zip-multi-disk.ckpt"] = plain[:end] + b"PK\x06\x07" + struct.pack("<IQI", 0, 0, 2) + plain[end:]
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
