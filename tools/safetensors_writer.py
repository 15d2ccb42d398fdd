"""The safetensors writer shared by the converters (tools/convert_checkpoint.py,
tools/convert_tflite.py): numpy and the standard library only."""
import json
import os
import struct

import numpy as np


class ConversionError(Exception):
    """A conversion that cannot go on; its message names the file and the fault."""


# Stored as they are; every other dtype is written as float32.
DTYPES = {np.dtype("float32"): ("F32", "<f4"), np.dtype("int8"): ("I8", "i1"), np.dtype("uint8"): ("U8", "u1")}


def write_safetensors(tensors, path, metadata):
    """8-byte little-endian header length, JSON header (names sorted) padded with spaces to a
    multiple of 8, then the data. Written to a temporary file in the same folder, then renamed:
    never a partial output. Returns the file's size."""
    header, offset, chunks = {"__metadata__": metadata}, 0, []
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        if array.dtype not in DTYPES:
            array = array.astype(np.float32)
        dtype, layout = DTYPES[array.dtype]
        data = np.ascontiguousarray(array, dtype=layout).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        chunks.append(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    temporary = f"{path}.partial-{os.getpid()}"
    try:
        with open(temporary, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for c in chunks:
                f.write(c)
        os.replace(temporary, path)
    except OSError as e:
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise ConversionError(f"{path}: cannot write: {e.strerror}")
    return 8 + len(text) + offset
