#!/usr/bin/env python3
"""Convert a TFLite model (float, or quantised uint8/int8) to semfuse's graph-v1 safetensors.

The layout is specified in docs/graph-format.md (the contract with the engine's graph executor).
The .tflite flatbuffer is read with the official `flatbuffers` runtime (flatbuffers.table.Table)
and the field numbers of TFLite's schema.fbs; numpy does the rest. No tensorflow, no `tflite`
package. Every offset is checked against the file's size, so a truncated or corrupt file is an
error message, never a traceback.

Weights stay 8-bit with their scales and zero points (or float32 for float models, or with
--float32); biases are dequantised to float32. Each op gets a `clamp` that merges its fused
activation with the range its quantised output can represent. Segmenters stop at the logits
(before the final upsampling and ARG_MAX); ops not needed for the outputs are dropped.

Usage:
  python3 tools/convert_tflite.py IN.tflite OUT.safetensors [--kind segmenter|depth] [--class-set NAME]
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np

from safetensors_writer import ConversionError, check_output, write_safetensors

try:
    import flatbuffers.number_types as N
    from flatbuffers.table import Table
except ImportError:  # reported in main(), without a traceback
    N = Table = None

# BuiltinOperator names in code order (schema.fbs); codes past this list are named by number.
BUILTIN_NAMES = (
    "ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE "
    "EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D "
    "LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 "
    "RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM "
    "CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND "
    "SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE "
    "BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM "
    "CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE "
    "SIN TRANSPOSE_CONV SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW "
    "ARG_MIN FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK "
    "REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR "
    "LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS "
    "WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE "
    "NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM "
    "BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG "
    "REAL COMPLEX_ABS HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL "
    "CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS RANDOM_STANDARD_NORMAL "
    "BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1"
).split()
CUSTOM = 32
SUPPORTED = {"ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE",
             "LOGISTIC", "MUL", "RELU", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "PAD", "MEAN", "SPLIT",
             "RESIZE_NEAREST_NEIGHBOR", "QUANTIZE", "HARD_SWISH"}
RESIZES = ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
IDENTITIES = ("QUANTIZE", "DEQUANTIZE")

# TensorType → (name, numpy dtype); None: no fixed element size.
TENSOR_TYPES = {0: ("FLOAT32", "<f4"), 1: ("FLOAT16", "<f2"), 2: ("INT32", "<i4"), 3: ("UINT8", "u1"),
                4: ("INT64", "<i8"), 5: ("STRING", None), 6: ("BOOL", "u1"), 7: ("INT16", "<i2"),
                8: ("COMPLEX64", "<c8"), 9: ("INT8", "i1"), 10: ("FLOAT64", "<f8"), 12: ("UINT64", "<u8"),
                15: ("UINT32", "<u4"), 16: ("UINT16", "<u2"), 17: ("INT4", None)}
FLOAT32, FLOAT16, INT32, UINT8, INT8, INT16 = 0, 1, 2, 3, 9, 7
QUANT_RANGE = {UINT8: (0, 255), INT8: (-128, 127), INT16: (-32768, 32767)}
PADDING = {0: "SAME", 1: "VALID"}
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
# Elements of any one tensor; the engine refuses larger (docs/graph-format.md), so does this.
MAX_TENSOR_ELEMENTS = 1 << 30
ACTIVATION_CLAMP = {"NONE": (None, None), "RELU": (0.0, None), "RELU_N1_TO_1": (-1.0, 1.0), "RELU6": (0.0, 6.0)}




def op_name(code, custom=None):
    if code == CUSTOM:
        return f"CUSTOM ({custom or 'unnamed'})"
    return BUILTIN_NAMES[code] if 0 <= code < len(BUILTIN_NAMES) else f"BUILTIN_OPERATOR_{code}"


# --- flatbuffer access with bounds checks ------------------------------------------------------

class FlatTable:
    """One flatbuffer table, read through flatbuffers.table.Table; field numbers as in schema.fbs.
    Every position is checked against the buffer's end before it is read."""

    def __init__(self, buf, pos, what):
        self.buf, self.what = buf, what
        n = len(buf)
        if pos < 0 or pos + 4 > n:
            raise ConversionError(f"{what} at byte {pos} lies outside the file ({n} bytes): truncated or corrupt")
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        if vtable < 0 or vtable + 4 > n or vtable + struct.unpack_from("<H", buf, vtable)[0] > n:
            raise ConversionError(f"{what}: its field table lies outside the file ({n} bytes): truncated or corrupt")
        self.t = Table(buf, pos)

    def _check(self, pos, size, field):
        if pos < 0 or pos + size > len(self.buf):
            raise ConversionError(f"{self.what}, field {field}: bytes {pos}..{pos + size} lie outside the file "
                                  f"({len(self.buf)} bytes): truncated or corrupt")

    def _offset(self, field, size):
        o = self.t.Offset(4 + 2 * field)
        if o == 0:
            return 0
        self._check(self.t.Pos + o, size, field)
        return o

    def scalar(self, field, flags, default):
        o = self._offset(field, flags.bytewidth)
        return default if o == 0 else self.t.Get(flags, self.t.Pos + o)

    def vector(self, field, elem_size):
        """(start, length) of a vector field, or None when absent."""
        o = self._offset(field, 4)
        if o == 0:
            return None
        self._check(self.t.Indirect(self.t.Pos + o), 4, field)
        start, length = self.t.Vector(o), self.t.VectorLen(o)
        self._check(start, length * elem_size, field)
        return start, length

    def array(self, field, dtype):
        v = self.vector(field, np.dtype(dtype).itemsize)
        if v is None:
            return np.zeros(0, dtype=dtype)
        return np.frombuffer(self.buf, dtype=dtype, count=v[1], offset=v[0])

    def string(self, field):
        v = self.vector(field, 1)
        return None if v is None else bytes(self.buf[v[0]:v[0] + v[1]]).decode("utf-8", "replace")

    def table(self, field, what):
        o = self._offset(field, 4)
        return None if o == 0 else FlatTable(self.buf, self.t.Indirect(self.t.Pos + o), what)

    def tables(self, field, what):
        v = self.vector(field, 4)
        if v is None:
            return []
        return [FlatTable(self.buf, self.t.Indirect(v[0] + 4 * i), f"{what} {i}") for i in range(v[1])]


# --- the model ---------------------------------------------------------------------------------

class Tensor:
    def __init__(self, index, ft, buffers):
        self.index = index
        self.shape = [int(s) for s in ft.array(0, "<i4")]
        self.type = ft.scalar(1, N.Int8Flags, 0)
        self.buffer = ft.scalar(2, N.Uint32Flags, 0)
        self.name = ft.string(3) or ""
        q = ft.table(4, f"tensor {index} quantization")
        self.scale = q.array(2, "<f4").astype(np.float64) if q else np.zeros(0)
        self.zero_point = q.array(3, "<i8").astype(np.float64) if q else np.zeros(0)
        self.quant_dim = q.scalar(6, N.Int32Flags, 0) if q else 0
        if self.buffer >= len(buffers):
            raise ConversionError(f"tensor {self.label}: buffer index {self.buffer} out of range ({len(buffers)} buffers)")
        self.data = buffers[self.buffer]  # bytes or None

    @property
    def label(self):
        return f"t{self.index} '{self.name}'"

    @property
    def type_name(self):
        return TENSOR_TYPES.get(self.type, (f"type {self.type}", None))[0]

    @property
    def quantised(self):
        return self.scale.size > 0

    @property
    def per_tensor(self):
        return self.scale.size == 1

    def zero_points(self):
        if self.zero_point.size == 0:
            return np.zeros(self.scale.size)
        if self.zero_point.size == 1 and self.scale.size > 1:
            return np.full(self.scale.size, self.zero_point[0])
        return self.zero_point

    def raw(self):
        """The constant's values in its stored type, shaped; the byte size was checked on load."""
        dtype = TENSOR_TYPES[self.type][1]
        return np.frombuffer(self.data, dtype=dtype).reshape(self.shape).copy()


class Operator:
    def __init__(self, index, ft, codes):
        self.index = index
        opcode_index = ft.scalar(0, N.Uint32Flags, 0)
        if opcode_index >= len(codes):
            raise ConversionError(f"operator {index}: opcode index {opcode_index} out of range ({len(codes)} codes)")
        self.code, self.custom = codes[opcode_index]
        self.name = op_name(self.code, self.custom)
        self.inputs = [int(i) for i in ft.array(1, "<i4")]
        self.outputs = [int(i) for i in ft.array(2, "<i4")]
        self.options = ft.table(4, f"operator {index} options")

    def opt(self, field, flags, default):
        return default if self.options is None else self.options.scalar(field, flags, default)


class Model:
    def __init__(self, path):
        try:
            with open(path, "rb") as f:
                buf = f.read()
        except OSError as e:
            raise ConversionError(f"{path}: cannot read: {e.strerror}")
        self.path, self.buf = path, buf
        if len(buf) == 0:
            raise ConversionError(f"{path}: empty file")
        if len(buf) < 8 or buf[4:8] != b"TFL3":
            raise ConversionError(f"{path}: not a TFLite model (no 'TFL3' identifier at bytes 4..8)")
        try:
            self._parse(buf)
        except ConversionError as e:
            raise ConversionError(f"{path}: {e}")
        except (struct.error, IndexError, ValueError, OverflowError) as e:
            raise ConversionError(f"{path}: truncated or corrupt flatbuffer ({e})")

    def _parse(self, buf):
        root = FlatTable(buf, struct.unpack_from("<I", buf, 0)[0], "model")
        self.version = root.scalar(0, N.Uint32Flags, 0)
        self.codes, self.code_tables = [], root.tables(1, "operator code")
        for oc in self.code_tables:
            deprecated = oc.scalar(0, N.Int8Flags, 0)
            builtin = oc.scalar(3, N.Int32Flags, 0)
            self.codes.append((max(deprecated, builtin), oc.string(1)))
        self.buffer_tables = root.tables(4, "buffer")
        buffers = []
        for i, b in enumerate(self.buffer_tables):
            data = b.vector(0, 1)
            offset, size = b.scalar(1, N.Uint64Flags, 0), b.scalar(2, N.Uint64Flags, 0)
            if data is not None and data[1] > 0:
                buffers.append(buf[data[0]:data[0] + data[1]])
            elif offset > 1:
                if offset + size > len(buf):
                    raise ConversionError(f"buffer {i}: bytes {offset}..{offset + size} lie outside the file "
                                          f"({len(buf)} bytes): truncated")
                buffers.append(buf[offset:offset + size])
            else:
                buffers.append(None)
        subgraphs = root.tables(2, "subgraph")
        if len(subgraphs) == 0:
            raise ConversionError("the model has no subgraph")
        if len(subgraphs) > 1:
            raise ConversionError(f"the model has {len(subgraphs)} subgraphs (control flow?): "
                                  "only single-subgraph models are supported")
        g = subgraphs[0]
        self.tensors = [Tensor(i, ft, buffers) for i, ft in enumerate(g.tables(0, "tensor"))]
        self.inputs = [int(i) for i in g.array(1, "<i4")]
        self.outputs = [int(i) for i in g.array(2, "<i4")]
        self.operators = [Operator(i, ft, self.codes) for i, ft in enumerate(g.tables(3, "operator"))]
        count = len(self.tensors)
        # Indices are checked here, once: Python would read a negative one from the list's end.
        # -1 is TFLite's "optional input absent"; outputs are always present.
        for op in self.operators:
            for t in op.inputs:
                if not -1 <= t < count:
                    raise ConversionError(f"operator {op.index} ({op.name}) refers to input tensor {t}, "
                                          f"but there are {count} tensors")
            for t in op.outputs:
                if not 0 <= t < count:
                    raise ConversionError(f"operator {op.index} ({op.name}) refers to output tensor {t}, "
                                          f"but there are {count} tensors")
        for t in self.inputs + self.outputs:
            if not 0 <= t < count:
                raise ConversionError(f"graph input/output tensor {t} out of range ({count} tensors)")
        for t in self.tensors:  # every shape, and every constant's size, before any is used
            if any(s < 0 for s in t.shape):
                kind = "constant tensor" if t.data is not None else "tensor"
                raise ConversionError(f"{kind} {t.label} has a dynamic shape {t.shape} (a negative dimension)")
            elements = math.prod(t.shape)  # Python integers: no wrap-around
            if elements > MAX_TENSOR_ELEMENTS:
                raise ConversionError(f"tensor {t.label} has shape {t.shape}: {elements} elements, more than "
                                      f"the {MAX_TENSOR_ELEMENTS} a semfuse graph tensor may have")
            if t.data is None:
                continue
            dtype = TENSOR_TYPES.get(t.type, (None, None))[1]
            if dtype is None:
                continue
            expected = elements * np.dtype(dtype).itemsize
            if len(t.data) != expected:
                raise ConversionError(f"tensor {t.label}: buffer holds {len(t.data)} bytes but shape {t.shape} "
                                      f"of {t.type_name} needs {expected}")


# --- conversion --------------------------------------------------------------------------------

class Converter:
    def __init__(self, model, args):
        self.m, self.args = model, args
        self.T = model.tensors
        self.producer = {}
        for op in model.operators:
            for t in op.outputs:
                self.producer[t] = op
        self.folded = {}  # tensor index → float32 array (DEQUANTIZE of a constant)
        for op in model.operators:
            if op.name == "DEQUANTIZE" and op.inputs and self.is_const(op.inputs[0]):
                self.folded[op.outputs[0]] = self.const_float(op.inputs[0])
        self.weights = {}
        self.notes = []

    # constants
    def is_const(self, t):
        return t in self.folded or self.T[t].data is not None

    def const_float(self, t):
        if t in self.folded:
            return self.folded[t]
        x = self.T[t]
        if x.type not in (FLOAT32, FLOAT16, INT32, UINT8, INT8, INT16, 4):
            raise ConversionError(f"constant {x.label} has unsupported type {x.type_name}")
        raw = x.raw().astype(np.float64)
        if x.quantised and x.type != FLOAT32 and x.type != FLOAT16:
            scale, zp = x.scale, x.zero_points()
            if x.scale.size > 1:
                axis = x.quant_dim
                if not 0 <= axis < raw.ndim or raw.shape[axis] != x.scale.size:
                    raise ConversionError(f"constant {x.label}: {x.scale.size} scales along axis {axis} "
                                          f"do not match its shape {x.shape}")
                b = [1] * raw.ndim
                b[axis] = x.scale.size
                scale, zp = scale.reshape(b), zp.reshape(b)
            raw = (raw - zp) * scale
        return raw.astype(np.float32)

    def const_ints(self, t, what, op):
        if not self.is_const(t):
            raise ConversionError(f"{op.name} (output {self.label(op)}): {what} must be a constant")
        x = self.T[t]
        if x.type not in (INT32, 4):
            raise ConversionError(f"{op.name} (output {self.label(op)}): {what} has type {x.type_name}, expected INT32")
        return [int(v) for v in x.raw().reshape(-1)]

    def label(self, op):
        return self.T[op.outputs[0]].label if op.outputs else "(no output)"

    # clamps
    def output_range(self, t):
        x = self.T[t]
        if x.type in QUANT_RANGE and x.per_tensor:
            qmin, qmax = QUANT_RANGE[x.type]
            s, zp = float(np.float32(x.scale[0])), float(x.zero_points()[0])
            return [s * (qmin - zp), s * (qmax - zp)]
        return [None, None]

    def clamp(self, op, activation="NONE"):
        if activation not in ACTIVATION_CLAMP:
            raise ConversionError(f"{op.name} (output {self.label(op)}): fused activation {activation} is not supported")
        lo, hi = self.output_range(op.outputs[0])
        alo, ahi = ACTIVATION_CLAMP[activation]
        lo = alo if lo is None else (lo if alo is None else max(lo, alo))
        hi = ahi if hi is None else (hi if ahi is None else min(hi, ahi))
        return [lo, hi]

    def activation(self, op, field):
        code = op.opt(field, N.Int8Flags, 0)
        return ACTIVATIONS.get(code, f"activation {code}")

    # weights
    def add_weight(self, n, t, op):
        x = self.T[t]
        name = f"op{n}.weight"
        if t not in self.folded and x.type in (UINT8, INT8) and x.quantised and not self.args.float32:
            axis = x.quant_dim if x.scale.size > 1 else 0
            if x.scale.size > 1 and (not 0 <= axis < len(x.shape) or x.shape[axis] != x.scale.size):
                raise ConversionError(f"{op.name} (output {self.label(op)}): weight {x.label} has {x.scale.size} "
                                      f"scales along axis {axis} but shape {x.shape}")
            self.weights[name] = x.raw()
            self.weights[f"op{n}.weight_scale"] = x.scale.astype(np.float32)
            self.weights[f"op{n}.weight_zero_point"] = x.zero_points().astype(np.float32)
            return axis
        if t not in self.folded and x.type in (UINT8, INT8, INT16) and not x.quantised:
            raise ConversionError(f"{op.name} (output {self.label(op)}): weight {x.label} is {x.type_name} "
                                  "without quantisation parameters")
        self.weights[name] = self.const_float(t)
        return x.quant_dim if x.scale.size > 1 else 0

    def add_bias(self, n, op, cout):
        name = f"op{n}.bias"
        b = op.inputs[2] if len(op.inputs) > 2 else -1
        if b < 0:
            self.weights[name] = np.zeros(cout, np.float32)
            return
        x = self.T[b]
        if not self.is_const(b):
            raise ConversionError(f"{op.name} (output {self.label(op)}): bias {x.label} is not a constant")
        if b not in self.folded and x.type in (INT32, 4) and not x.quantised:
            # No bias scale stored: TFLite's rule, input scale × weight scale.
            xin, w = self.T[op.inputs[0]], self.T[op.inputs[1]]
            if not (xin.per_tensor and w.quantised):
                raise ConversionError(f"{op.name} (output {self.label(op)}): integer bias {x.label} without a scale")
            value = x.raw().astype(np.float64) * xin.scale[0] * w.scale
        else:
            value = self.const_float(b)
        value = np.asarray(value, np.float32).reshape(-1)
        if value.size == 1 and cout > 1:
            value = np.full(cout, value[0], np.float32)
        if value.size != cout:
            raise ConversionError(f"{op.name} (output {self.label(op)}): bias {x.label} has {value.size} values "
                                  f"for {cout} output channels")
        self.weights[name] = value

    def add_constant(self, t):
        name = f"c{t}"
        if name in self.weights:
            return name
        x = self.T[t]
        if t not in self.folded and x.type in (UINT8, INT8) and x.per_tensor and not self.args.float32:
            self.weights[name] = x.raw()
            self.weights[f"{name}.scale"] = x.scale.astype(np.float32)
            self.weights[f"{name}.zero_point"] = x.zero_points().astype(np.float32)
        else:
            self.weights[name] = self.const_float(t)
        return name

    # graph
    def find_outputs(self):
        ends, kinds = [], []
        for t in self.m.outputs:
            op = self.producer.get(t)
            kind = None
            if op is not None and op.name == "ARG_MAX":
                kind = "segmenter"
                t = op.inputs[0]
            if self.args.kind:
                if kind and self.args.kind != kind:
                    self.notes.append(f"--kind {self.args.kind} given for a graph ending in ARG_MAX")
                kind = self.args.kind
            # Trailing QUANTIZE/DEQUANTIZE are identities in float; for segmenters, the final
            # channel-preserving upsampling is left to the engine.
            while True:
                op = self.producer.get(t)
                if op is None:
                    break
                if op.name in IDENTITIES and not self.is_const(op.inputs[0]):
                    t = op.inputs[0]
                elif (kind == "segmenter" and op.name in RESIZES and
                      self.T[op.inputs[0]].shape[-1:] == self.T[t].shape[-1:]):
                    t = op.inputs[0]
                else:
                    break
            shape = self.T[t].shape
            if kind is None:
                if len(shape) == 4 and shape[3] == 1:
                    kind = "depth"
                else:
                    raise ConversionError(f"cannot tell whether output {self.T[t].label} {shape} is a segmenter or "
                                          "depth (no ARG_MAX at the end, more than 1 channel): pass --kind")
            ends.append(t)
            kinds.append(kind)
        if len(set(kinds)) != 1:
            raise ConversionError(f"outputs of different kinds {kinds}: not supported")
        return ends, kinds[0]

    def needed_ops(self, ends):
        needed, stack, seen = set(), list(ends), set()
        while stack:
            t = stack.pop()
            if t in seen or t < 0:
                continue
            seen.add(t)
            op = self.producer.get(t)
            if op is None or t in self.folded:
                continue
            needed.add(op.index)
            stack.extend(op.inputs)
        return [op for op in self.m.operators if op.index in needed]

    def convert(self):
        m = self.m
        if len(m.inputs) != 1:
            raise ConversionError(f"the graph has {len(m.inputs)} inputs; exactly one image input is supported")
        xin = self.T[m.inputs[0]]
        if len(xin.shape) != 4:
            raise ConversionError(f"input {xin.label} has shape {xin.shape}; expected NHWC [1, H, W, C]")
        if xin.shape[0] != 1:
            raise ConversionError(f"input {xin.label} has batch size {xin.shape[0]}; only batch 1 is supported")
        if min(xin.shape) < 1:
            raise ConversionError(f"input {xin.label} has an empty shape {xin.shape}")
        ends, kind = self.find_outputs()
        ops = self.needed_ops(ends)
        produced = {t for op in ops for t in op.outputs}
        for t in ends:  # a graph whose output nothing computes (no operators left) is not a model
            if t not in produced:
                raise ConversionError(f"output tensor {self.T[t].label} is not computed by any operator")
        dropped = len(m.operators) - len(ops)
        for op in ops:  # refuse before writing anything
            if op.name not in SUPPORTED:
                raise ConversionError(f"unsupported operator {op.name} (TFLite op {op.index}, output tensor "
                                      f"{self.label(op)})")
            optional = (2,) if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D") else ()  # the bias
            missing = [i for i, t in enumerate(op.inputs) if t < 0 and i not in optional]
            if missing or not op.outputs:
                raise ConversionError(f"{op.name} (TFLite op {op.index}): " + (f"input {missing[0]} is absent (-1)"
                                      if missing else "it has no output"))
        # Input pixels p in 0..255 → scale·(p − zero_point).
        a = self.args
        if xin.type in (UINT8, INT8) and xin.per_tensor:
            scale, zp = float(np.float32(xin.scale[0])), float(xin.zero_points()[0])
            if xin.type == INT8:
                zp += 128.0  # int8 input q = p − 128
            if a.input_scale is not None or a.input_zero_point is not None:
                self.notes.append("--input-scale/--input-zero-point override the input's quantisation")
        elif xin.type == FLOAT32:
            scale, zp = 1.0 / 255.0, 0.0
            if a.input_scale is None and a.input_zero_point is None:
                self.notes.append(f"warning: float input {xin.label}: its range is not recorded in the model; "
                                  "assuming scale 1/255, zero point 0 (pixels 0..1); pass --input-scale/--input-zero-point")
        else:
            raise ConversionError(f"input {xin.label} has type {xin.type_name}; expected UINT8, INT8 or FLOAT32")
        if a.input_scale is not None:
            scale = a.input_scale
        if a.input_zero_point is not None:
            zp = a.input_zero_point
        graph_ops = [self.convert_op(len_before, op) for len_before, op in enumerate(ops)]
        for entry, op in zip(graph_ops, ops):
            if op.name in RESIZES:
                entry["size"] = self.resize_size(op, ops)
        activations = {m.inputs[0]}
        for op in ops:
            for t in op.inputs + op.outputs:
                if t >= 0 and not self.is_const(t):
                    activations.add(t)
        for t in sorted(activations):
            x = self.T[t]
            if len(x.shape) == 4 and x.shape[0] != 1:
                raise ConversionError(f"tensor {x.label} has batch size {x.shape[0]}; only batch 1 is supported")
        graph = {
            "input": {"tensor": f"t{xin.index}", "height": xin.shape[1], "width": xin.shape[2],
                      "channels": xin.shape[3], "scale": scale, "zero_point": zp},
            "outputs": [{"tensor": f"t{t}", "role": "logits" if kind == "segmenter" else "depth"} for t in ends],
            "tensors": {f"t{t}": {"shape": self.T[t].shape, "name": self.T[t].name} for t in sorted(activations)},
            "ops": graph_ops,
        }
        class_set = None
        if kind == "segmenter":
            channels = self.T[ends[0]].shape[-1]
            class_set = a.class_set
            if class_set is None:
                if channels == 32:
                    class_set = "ade32"
                else:
                    class_set = f"unknown{channels}"
                    self.notes.append(f"warning: {channels} logit channels match no known class set; "
                                      f"writing class set '{class_set}' (pass --class-set)")
                self.notes.append(f"assumed class set {class_set} ({channels} logit channels)")
        if not a.kind:
            self.notes.append(f"assumed kind {kind} ("
                              + ("graph ends in ARG_MAX" if kind == "segmenter" else "1-channel output") + ")")
        if dropped:
            self.notes.append(f"dropped {dropped} op(s) not needed for the {'logits' if kind == 'segmenter' else 'output'}")
        return graph, kind, class_set

    def convert_op(self, n, op):
        name, ins, out = op.name, op.inputs, op.outputs
        e = {"op": name}
        def act(x):
            return f"t{x}"
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            dw = name == "DEPTHWISE_CONV_2D"
            w = self.T[ins[1]]
            if not self.is_const(ins[1]) or len(w.shape) != 4:
                raise ConversionError(f"{name} (output {self.label(op)}): filter {w.label} must be a 4-d constant")
            axis = self.add_weight(n, ins[1], op)
            cout = w.shape[3] if dw else w.shape[0]
            self.add_bias(n, op, cout)
            activation = self.activation(op, 4 if dw else 3)
            e.update(inputs=[act(ins[0])], outputs=[act(out[0])], weight=f"op{n}.weight", bias=f"op{n}.bias",
                     weight_quant_axis=axis,
                     stride=[max(1, op.opt(2, N.Int32Flags, 1)), max(1, op.opt(1, N.Int32Flags, 1))],
                     dilation=[max(1, op.opt(6 if dw else 5, N.Int32Flags, 1)),
                               max(1, op.opt(5 if dw else 4, N.Int32Flags, 1))],
                     padding=PADDING.get(op.opt(0, N.Int8Flags, 0), "SAME"))
            if dw:
                e["depth_multiplier"] = max(1, op.opt(3, N.Int32Flags, 1))
            e.update(activation=activation, clamp=self.clamp(op, activation))
        elif name in ("ADD", "MUL"):
            if len(ins) != 2:
                raise ConversionError(f"{name} (output {self.label(op)}): expected 2 inputs, found {len(ins)}")
            activation = self.activation(op, 0)
            e.update(inputs=[self.add_constant(i) if self.is_const(i) else act(i) for i in ins],
                     outputs=[act(out[0])], activation=activation, clamp=self.clamp(op, activation))
        elif name == "AVERAGE_POOL_2D":
            xin, xout = self.T[ins[0]].shape, self.T[out[0]].shape
            fh, fw = op.opt(4, N.Int32Flags, 1), op.opt(3, N.Int32Flags, 1)
            if fh < 1 or fw < 1:
                raise ConversionError(f"{name} (output {self.label(op)}): filter size {fh}x{fw} is not positive")
            padding = PADDING.get(op.opt(0, N.Int8Flags, 0), "SAME")
            whole = padding == "VALID" and [fh, fw] == xin[1:3] and xout[1:3] == [1, 1]
            e.update(inputs=[act(ins[0])], outputs=[act(out[0])], filter=[fh, fw],
                     stride=[max(1, op.opt(2, N.Int32Flags, 1)), max(1, op.opt(1, N.Int32Flags, 1))],
                     padding=padding, clamp=self.clamp(op, self.activation(op, 5)), **{"global": whole})
        elif name == "MEAN":
            e.update(inputs=[act(ins[0])], outputs=[act(out[0])], axes=self.const_ints(ins[1], "axes", op),
                     keep_dims=bool(op.opt(0, N.BoolFlags, False)), clamp=self.clamp(op))
        elif name in RESIZES:
            align = op.opt(2 if name == "RESIZE_BILINEAR" else 0, N.BoolFlags, False)
            half = op.opt(3 if name == "RESIZE_BILINEAR" else 1, N.BoolFlags, False)
            e.update(inputs=[act(ins[0])], outputs=[act(out[0])], align_corners=bool(align),
                     half_pixel_centers=bool(half), size=None, clamp=self.clamp(op))
        elif name == "CONCATENATION":
            e.update(inputs=[self.add_constant(i) if self.is_const(i) else act(i) for i in ins],
                     outputs=[act(out[0])], axis=op.opt(0, N.Int32Flags, 0),
                     clamp=self.clamp(op, self.activation(op, 1)))
        elif name == "SPLIT":
            axis = self.const_ints(ins[0], "the split axis", op)
            e.update(inputs=[act(ins[1])], outputs=[act(o) for o in out], axis=axis[0],
                     num_splits=op.opt(0, N.Int32Flags, len(out)), clamp=self.clamp(op))
        elif name == "PAD":
            p = self.const_ints(ins[1], "paddings", op)
            e.update(inputs=[act(ins[0])], outputs=[act(out[0])],
                     paddings=[p[i:i + 2] for i in range(0, len(p), 2)], clamp=self.clamp(op))
        elif name == "RESHAPE":
            e.update(inputs=[act(ins[0])], outputs=[act(out[0])], shape=self.T[out[0]].shape, clamp=self.clamp(op))
        elif name in IDENTITIES:
            e.update(inputs=[act(ins[0])], outputs=[act(out[0])], clamp=self.clamp(op))
        else:  # RELU, RELU6, HARD_SWISH, LOGISTIC
            builtin = {"RELU": "RELU", "RELU6": "RELU6"}.get(name, "NONE")
            e.update(inputs=[act(ins[0])], outputs=[act(out[0])], clamp=self.clamp(op, builtin))
        data = ins[1] if name == "SPLIT" else ins[0]
        if name not in ("ADD", "MUL", "CONCATENATION") and self.is_const(data):
            raise ConversionError(f"{name} (output {self.label(op)}): a constant data input ({self.T[data].label}) "
                                  "is not supported")
        return e

    def resize_size(self, op, ops):
        """`like` a same-sized sibling of a consumer that combines tensors, else `scale`, else `fixed`."""
        out, src = self.T[op.outputs[0]], self.T[op.inputs[0]]
        hw = out.shape[1:3]
        candidates = []
        for consumer in ops:
            if consumer.name in ("CONCATENATION", "ADD", "MUL") and op.outputs[0] in consumer.inputs:
                for t in consumer.inputs:
                    if t != op.outputs[0] and t >= 0 and not self.is_const(t) and self.T[t].shape[1:3] == hw:
                        candidates.append(t)
        # Prefer siblings not made by another resize, so two resizes never follow each other.
        candidates.sort(key=lambda t: self.producer.get(t) is not None and self.producer[t].name in RESIZES)
        for t in candidates:
            p = self.producer.get(t)
            if p is not None and p.name in RESIZES and self.depends_on(t, op.outputs[0]):
                continue
            if p is not None and p.name in RESIZES and p.index > op.index:
                continue  # the later resize will follow this one instead
            return {"like": f"t{t}"}
        ih, iw = src.shape[1:3]
        if ih > 0 and iw > 0 and hw[0] % ih == 0 and hw[1] % iw == 0:
            return {"scale": [hw[0] // ih, hw[1] // iw]}
        return {"fixed": list(hw)}

    def depends_on(self, t, target):
        stack, seen = [t], set()
        while stack:
            x = stack.pop()
            if x == target:
                return True
            if x in seen or x < 0:
                continue
            seen.add(x)
            p = self.producer.get(x)
            if p is not None:
                stack.extend(p.inputs)
        return False


# --- safetensors -------------------------------------------------------------------------------


def layout_report(model):
    """--layout: byte positions of patchable fields (for tests that corrupt a model in place)."""
    codes = []
    for i, oc in enumerate(model.code_tables):
        entry = {"index": i, "code": model.codes[i][0], "name": op_name(*model.codes[i])}
        for key, field in (("deprecated_builtin_code_at", 0), ("builtin_code_at", 3)):
            o = oc.t.Offset(4 + 2 * field)
            entry[key] = oc.t.Pos + o if o else None
        codes.append(entry)
    buffers = []
    for i, b in enumerate(model.buffer_tables):
        v = b.vector(0, 1)
        if v is not None and v[1] > 0:
            buffers.append({"index": i, "length_at": v[0] - 4, "length": v[1]})
    tensors = [{"index": t.index, "name": t.name, "buffer": t.buffer, "shape": t.shape, "type": t.type_name}
               for t in model.tensors]
    return {"operator_codes": codes, "buffers": buffers, "tensors": tensors,
            "operators": [{"index": op.index, "name": op.name, "outputs": op.outputs} for op in model.operators]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Format: docs/graph-format.md (graph-v1).")
    parser.add_argument("model", help="input .tflite")
    parser.add_argument("output", nargs="?", help="output .safetensors")
    parser.add_argument("--kind", choices=("segmenter", "depth"),
                        help="default: segmenter when the graph ends in ARG_MAX, depth for a 1-channel output")
    parser.add_argument("--class-set", help="class set of a segmenter's logits (default: ade32 for 32 channels)")
    parser.add_argument("--float32", action="store_true", help="write dequantised float32 weights instead of 8-bit + scales")
    parser.add_argument("--input-scale", type=float, help="input = scale·(pixel − zero point); default: the input's quantisation, "
                                                          "or 1/255 for float inputs")
    parser.add_argument("--input-zero-point", type=float, help="see --input-scale (default 0 for float inputs)")
    parser.add_argument("--layout", action="store_true", help=argparse.SUPPRESS)  # test helper: JSON of field positions
    args = parser.parse_args(argv)
    if Table is None:
        print("error: the Python 'flatbuffers' package is missing (scripts/setup.sh installs it; "
              "or: python3 -m pip install flatbuffers)", file=sys.stderr)
        return 1
    try:
        if args.output and not args.layout:
            check_output(args.output, inputs=[args.model])  # before any work
        model = Model(args.model)
        if args.layout:
            print(json.dumps(layout_report(model)))
            return 0
        if not args.output:
            raise ConversionError("missing the output path (usage: convert_tflite.py IN.tflite OUT.safetensors)")
        try:
            converter = Converter(model, args)
            graph, kind, class_set = converter.convert()
        except ConversionError as e:
            raise ConversionError(f"{args.model}: {e}")
        except (struct.error, IndexError, ValueError, KeyError) as e:
            raise ConversionError(f"{args.model}: corrupt or inconsistent model ({type(e).__name__}: {e})")
        metadata = {"semfuse.format": "graph-v1", "semfuse.kind": kind,
                    "semfuse.source": f"{os.path.basename(args.model)} md5:{hashlib.md5(model.buf).hexdigest()}",
                    "semfuse.graph": json.dumps(graph, separators=(",", ":"))}
        if class_set:
            metadata["semfuse.class_set"] = class_set
        size = write_safetensors(converter.weights, args.output, metadata)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for note in converter.notes:
        print(note)
    weights = converter.weights
    bits = "float32" if all(v.dtype == np.float32 for v in weights.values()) else "8-bit weights + scales"
    out = graph["outputs"][0]
    print(f"{args.output}: {kind}" + (f" ({class_set})" if class_set else "")
          + f", {len(graph['ops'])} ops, {len(weights)} weight tensors ({bits}), {len(graph['tensors'])} activation tensors, "
          f"output {out['tensor']} {graph['tensors'][out['tensor']]['shape']} ({out['role']}), {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
