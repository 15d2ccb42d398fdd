"""The safetensors writer shared by the converters (tools/convert_checkpoint.py,
tools/convert_tflite.py): numpy and the standard library only."""
import json
import os
import stat
import struct
import tempfile

import numpy as np


class ConversionError(Exception):
    """A conversion that cannot go on; its message names the file and the fault."""


# Stored as they are; every other dtype is written as float32.
DTYPES = {np.dtype("float32"): ("F32", "<f4"), np.dtype("int8"): ("I8", "i1"), np.dtype("uint8"): ("U8", "u1")}


def describe(mode):
    """What a stat mode is, in words for an error message."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def check_output(path, inputs=()):
    """The file an output at `path` will replace: `path` itself when it is a regular file or does
    not exist, or the regular file a symbolic link points to (the link is kept). Anything else
    (a device node, FIFO, socket, folder, a link to one of them, a dangling link) is refused, as
    is an output that is one of the `inputs`: the rename of an atomic write would replace a
    device node with a regular file, and writing over the input loses it. Called before any
    work, and again by write_safetensors."""
    refusal = "the converter writes only regular files and never replaces a device, FIFO, socket or folder"
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        target = path
    except OSError as e:
        raise ConversionError(f"{path}: cannot write: {e.strerror}")
    else:
        if stat.S_ISLNK(info.st_mode):
            target = os.path.realpath(path)
            try:
                pointed = os.stat(target)
            except OSError:
                raise ConversionError(f"{path}: cannot write: is a symbolic link to {os.readlink(path)}, which does not exist")
            if not stat.S_ISREG(pointed.st_mode):
                raise ConversionError(f"{path}: cannot write: is a symbolic link to {target}, {describe(pointed.st_mode)}; {refusal}")
        elif not stat.S_ISREG(info.st_mode):
            raise ConversionError(f"{path}: cannot write: is {describe(info.st_mode)}; {refusal}")
        else:
            target = path
    for source in inputs:
        try:
            same = os.path.samefile(source, target)
        except OSError:
            same = os.path.realpath(source) == os.path.realpath(target)
        if same:
            raise ConversionError(f"{path}: cannot write: it is the input {source}; give another output file")
    folder = os.path.dirname(target) or "."
    if not os.path.isdir(folder):
        raise ConversionError(f"{path}: cannot write: folder {folder} does not exist")
    return target


def write_safetensors(tensors, path, metadata):
    """8-byte little-endian header length, JSON header (names sorted) padded with spaces to a
    multiple of 8, then the data. Written to a temporary file in the same folder, then renamed
    over a regular file or nothing (see check_output): never a partial output, never a replaced
    device or the loss of a good file on failure. Returns the file's size."""
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
    target = check_output(path)
    folder, name = os.path.split(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = None
    temporary = None
    try:
        # A fresh name of our own (O_EXCL), never a file or link someone placed there.
        fd, temporary = tempfile.mkstemp(prefix=f".{name}.partial-", dir=folder or ".")
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, mode if mode is not None else 0o666 & ~_umask())
        check_output(path)  # what is there may have changed while writing
        os.replace(temporary, target)
    except (OSError, ConversionError) as e:
        if temporary is not None:
            try:
                os.remove(temporary)
            except OSError:
                pass
        if isinstance(e, ConversionError):
            raise
        raise ConversionError(f"{path}: cannot write: {e.strerror}")
    return 8 + len(text) + offset


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
