#!/usr/bin/env python3
"""Writes tiny TFLite models for TFLiteConverterTests with the official `flatbuffers` Builder
and schema.fbs's field numbers: one valid model and crafted copies that each declare one count,
index, offset or size the file cannot back.

  python3 crafted_tflite.py OUT_DIR

The valid model (valid.tflite): input t0 [1, 4, 4, 3] float32, a 1x1 CONV_2D with filter t1
[1, 1, 1, 3] (a constant, buffer 1) and no bias, output t2 [1, 4, 4, 1]: a depth model.
  buffer-past-end.tflite      buffer 1 stored by offset/size (schema fields 1, 2) past the file's end
  negative-shape.tflite       output shape [1, 4, -4, 1]
  huge-shape.tflite           output shape [1, 65536, 65536, 1] (2^32 elements)
  huge-constant.tflite        filter shape [65536, 65536, 65536, 65536]: 2^64 elements, 0 in int64
  negative-index.tflite       the conv's data input is tensor -3 (Python would read t0 from the end)
  absent-input.tflite         the conv's data input is -1 (absent), which only its bias may be
"""
import os
import struct
import sys

import flatbuffers


def model(output_shape=(1, 4, 4, 1), filter_shape=(1, 1, 1, 3), conv_inputs=(0, 1, -1), buffer_at=None):
    b = flatbuffers.Builder(1024)

    def ints(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependInt32(v)
        return b.EndVector()

    def string(text):
        return b.CreateString(text)

    def tensor(shape, buffer, name):
        shape_vector, name_string = ints(list(shape)), string(name)
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(0, shape_vector, 0)
        b.PrependInt8Slot(1, 0, 0)  # FLOAT32
        b.PrependUint32Slot(2, buffer, 0)
        b.PrependUOffsetTRelativeSlot(3, name_string, 0)
        return b.EndObject()

    filter_bytes = struct.pack("<3f", 0.25, 0.5, 0.25)
    buffers = []
    b.StartObject(3)
    buffers.append(b.EndObject())  # buffer 0: empty
    if buffer_at is None:
        data = b.CreateByteVector(filter_bytes)
        b.StartObject(3)
        b.PrependUOffsetTRelativeSlot(0, data, 0)
    else:
        b.StartObject(3)
        b.PrependUint64Slot(1, buffer_at, 0)
        b.PrependUint64Slot(2, len(filter_bytes), 0)
    buffers.append(b.EndObject())

    tensors = [tensor((1, 4, 4, 3), 0, "input"), tensor(filter_shape, 1, "filter"), tensor(output_shape, 0, "depth")]
    op_inputs, op_outputs = ints(list(conv_inputs)), ints([2])
    b.StartObject(5)
    b.PrependUint32Slot(0, 0, 0)
    b.PrependUOffsetTRelativeSlot(1, op_inputs, 0)
    b.PrependUOffsetTRelativeSlot(2, op_outputs, 0)
    operator = b.EndObject()

    def tables(items):
        b.StartVector(4, len(items), 4)
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    tensor_vector, operator_vector = tables(tensors), tables([operator])
    inputs, outputs = ints([0]), ints([2])
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, tensor_vector, 0)
    b.PrependUOffsetTRelativeSlot(1, inputs, 0)
    b.PrependUOffsetTRelativeSlot(2, outputs, 0)
    b.PrependUOffsetTRelativeSlot(3, operator_vector, 0)
    subgraph = b.EndObject()

    b.StartObject(4)
    b.PrependInt8Slot(0, 3, 0)  # CONV_2D (deprecated_builtin_code)
    b.PrependInt32Slot(3, 3, 0)  # CONV_2D
    code = b.EndObject()

    codes, subgraphs, buffer_vector = tables([code]), tables([subgraph]), tables(buffers)
    b.StartObject(5)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, codes, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(4, buffer_vector, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=b"TFL3")
    return bytes(b.Output())


def main(out):
    files = {
        "valid.tflite": model(),
        "buffer-past-end.tflite": model(buffer_at=1 << 40),
        "negative-shape.tflite": model(output_shape=(1, 4, -4, 1)),
        "huge-shape.tflite": model(output_shape=(1, 65536, 65536, 1)),
        "huge-constant.tflite": model(filter_shape=(65536, 65536, 65536, 65536)),
        "negative-index.tflite": model(conv_inputs=(-3, 1, -1)),
        "absent-input.tflite": model(conv_inputs=(-1, 1, -1)),
    }
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1])
