"""Low-bit weights made real in flash: TFLite Micro's own look-up-table (LUT) compression of int8 weight tensors.

A weight tensor holding at most 2**b distinct values can be stored as b-bit indices into value tables (one table for
the tensor or one per channel). `tflite_micro.tensorflow.lite.micro.compression` (shipped with the tflite_micro
wheel, no TensorFlow) rewrites such a tensor as packed indices plus an ancillary tensor (16-byte header + tables) and
inserts a DECODE custom operator (`TFLM_DECODE`) before each consumer; the TFLM interpreter expands the values into
the arena right before the consumer runs, so outputs are bit-identical to the uncompressed model's.

What this module adds on top of the library:
  - the choice: for every constant int8 filter of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED in subgraph 0 the
    smallest index width, and compression only where the file really shrinks. A compressed tensor also costs file
    bookkeeping (the DECODE operator, an ancillary and a decoded tensor entry with their names, buffer alignment:
    about 200 bytes), so each candidate whose indices + tables undercut the plain tensor is compressed alone once and
    its file growth measured; a 3x3 depthwise kernel (9 values per channel) never pays for its tables.
  - one repair: the library leaves the original per-channel quantization parameters on the packed-index tensor
    (uint8 bytes that no kernel dequantizes) while the decoded tensor carries its own copy, so every compressed tensor
    would store its scales and zero points twice (12 bytes per channel). They are dropped from the packed tensor
    (schema object API, then the library's own flatbuffer alignment tool).

The table mode is the one the runtime decodes, not the cheaper one. The library lets a spec ask for one table
(per_tensor) or one per channel along an axis and writes that into the ancillary header, but the DECODE kernel of
the TFLM runtime shipped with the same wheel still takes the number of tables and their axis from the decoded
tensor's quantization (scale count, quantized_dimension): a per-channel quantized filter compressed with one table
decodes to wrong weights (measured: outputs off by up to 250 of 255 int8 steps). Upstream the kernel side is
tensorflow/tflite-micro issue 3685 / PR 3691 (open), the tool side PR 3758 (merged). So a per-channel quantized filter
(every converter-made conv and dense filter) gets one table per quantized channel, a per-tensor quantized one a single
table; `LutTensor.per_tensor_bytes` reports what one table would store, for when the runtime catches up.

Flash is not the whole bill: each decoded tensor lives in the arena while its consumer runs, so the arena grows by
about the largest decoded weight tensor. `verify_lut` reports both arenas.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.compression import spec
from tflite_micro.tensorflow.lite.micro.compression.compress import compress
from tflite_micro.tensorflow.lite.micro.compression.compressor import CompressionError
from tflite_micro.tensorflow.lite.micro.compression.decode_insert import DECODE_CUSTOM_OP_NAME
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb
from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper

from kws_zoo.core.errors import ConfigError, DeviceError
from kws_zoo.device.flatbuffer import op_name, read_tflite
from kws_zoo.device.runtime import TflmModel

# The channel axis of each op's filter (input 1): [out, h, w, in], [1, h, w, out] and [out, in].
WEIGHT_OPS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}
FILTER_INPUT = 1
DECODE_OP = "CUSTOM:" + DECODE_CUSTOM_OP_NAME  # as kws_zoo.device.flatbuffer.tflite_ops names it
MAX_INDEX_BITS = 7  # the width the ancillary header can express (3 bits, 1-7)
HEADER_BYTES = 16  # the DECODE common metadata ahead of the value tables
PER_TENSOR, PER_CHANNEL = "per_tensor", "per_channel"


@dataclasses.dataclass(frozen=True)
class LutTensor:
    """What lut_compress decided for one weight tensor.

    distinct: distinct values in the whole tensor; distinct_per_channel: the most any output channel holds (None
    for a tensor skipped outright: not int8, not constant, shared buffer).
    mode: the table mode the runtime decodes (PER_CHANNEL along channel_axis for a per-channel quantized filter,
    else PER_TENSOR); bits: the smallest index width holding the values in that mode (None above max_index_bits).
    bytes_before: the plain int8 tensor; bytes_stored: packed indices + header + value tables of that encoding;
    per_tensor_bytes: what a single table would store (not decodable yet for a per-channel quantized filter);
    bytes_after: bytes_before plus the file growth measured with only this tensor compressed (bookkeeping included),
    None when not measured (indices + tables alone do not pay). compressed: whether the returned model holds it
    compressed; reason: why (not).
    """

    tensor: int
    name: str
    op: str
    shape: tuple[int, ...]
    channel_axis: int
    distinct: int | None
    distinct_per_channel: int | None
    bits: int | None
    mode: str | None
    bytes_before: int
    bytes_stored: int | None
    per_tensor_bytes: int | None
    bytes_after: int | None
    compressed: bool
    reason: str


@dataclasses.dataclass(frozen=True)
class LutReport:
    """Per-tensor decisions of lut_compress and the file sizes before/after."""

    tensors: tuple[LutTensor, ...]
    file_bytes_before: int
    file_bytes_after: int
    note: str

    @property
    def changed(self) -> bool:
        return any(t.compressed for t in self.tensors)

    @property
    def compressed(self) -> tuple[LutTensor, ...]:
        return tuple(t for t in self.tensors if t.compressed)

    def as_dict(self) -> dict:
        return {"tensors": [dataclasses.asdict(t) for t in self.tensors], "file_bytes_before": self.file_bytes_before,
                "file_bytes_after": self.file_bytes_after, "changed": self.changed, "note": self.note}

    def table(self) -> str:
        """A plain-text table, one row per weight tensor, then the totals and the note."""
        rows = [("tensor", "op", "shape", "distinct", "per ch.", "bits", "mode", "before", "stored", "1 table",
                 "after", "compressed")]
        for t in self.tensors:
            rows.append((t.name, t.op, "x".join(map(str, t.shape)), _text(t.distinct), _text(t.distinct_per_channel),
                         _text(t.bits), t.mode or "-", str(t.bytes_before), _text(t.bytes_stored),
                         _text(t.per_tensor_bytes), _text(t.bytes_after),
                         "yes" if t.compressed else f"no: {t.reason}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
        lines.append(f"file: {self.file_bytes_before} -> {self.file_bytes_after} bytes "
                     f"({self.file_bytes_after - self.file_bytes_before:+d})")
        lines.append(self.note)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _text(value: int | None) -> str:
    return "-" if value is None else str(value)


def index_bits(distinct: int) -> int:
    """The smallest index width b >= 1 with distinct <= 2**b."""
    return max(1, (int(distinct) - 1).bit_length())


def distinct_per_channel(values: np.ndarray, axis: int) -> np.ndarray:
    """Number of distinct values in each slice along `axis`."""
    rows = np.sort(np.moveaxis(np.asarray(values), axis, 0).reshape(values.shape[axis], -1), axis=1)
    return 1 + np.count_nonzero(np.diff(rows, axis=1), axis=1)


def lut_stored_bytes(size: int, bits: int, tables: int, table_len: int) -> int:
    """Packed indices + DECODE header + value tables (int8: one byte per value, each table padded to table_len)."""
    return -(-size * bits // 8) + HEADER_BYTES + tables * table_len


def decode_op_count(model_bytes: bytes) -> int:
    """Number of DECODE operators in all subgraphs (0 for an uncompressed model)."""
    model = read_tflite(model_bytes)
    return sum(op_name(model, sub.Operators(i).OpcodeIndex()) == DECODE_OP
               for sub in (model.Subgraphs(s) for s in range(model.SubgraphsLength()))
               for i in range(sub.OperatorsLength()))


@dataclasses.dataclass(frozen=True)
class _Candidate:
    tensor: int
    name: str
    op: str
    values: np.ndarray
    axis: int  # the channel axis: the quantized dimension of a per-channel quantized filter, else the op's
    mode: str  # the table mode the runtime decodes: PER_CHANNEL iff the filter has one scale per channel


def _weight_tensors(model_bytes: bytes) -> tuple[list[_Candidate], list[LutTensor]]:
    """The constant int8 filters of the weight ops of subgraph 0 (each tensor once, first consumer's op), and the
    filters skipped outright (not int8, not constant, buffer shared with another tensor)."""
    model = read_tflite(model_bytes)
    sub = model.Subgraphs(0)
    users: dict[int, list[int]] = {}
    for t in range(sub.TensorsLength()):
        users.setdefault(sub.Tensors(t).Buffer(), []).append(t)
    seen: set[int] = set()
    candidates, skipped = [], []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        name = op_name(model, op.OpcodeIndex())
        if name not in WEIGHT_OPS or op.InputsLength() <= FILTER_INPUT:
            continue
        index = int(op.Inputs(FILTER_INPUT))
        if index < 0 or index in seen:
            continue
        seen.add(index)
        tensor = sub.Tensors(index)
        shape = tuple(int(tensor.Shape(j)) for j in range(tensor.ShapeLength()))
        buffer = model.Buffers(tensor.Buffer())
        tname = (tensor.Name() or b"").decode()
        size, axis = int(np.prod(shape)), WEIGHT_OPS[name]
        quant = tensor.Quantization()
        scales = quant.ScaleLength() if quant is not None else 0
        mode = PER_CHANNEL if scales > 1 else PER_TENSOR
        if mode == PER_CHANNEL:
            axis = int(quant.QuantizedDimension())
        aliases = [(sub.Tensors(t).Name() or b"").decode() for t in users[tensor.Buffer()] if t != index]
        if tensor.Type() != fb.TensorType.INT8:
            reason = "not an int8 tensor"
        elif buffer is None or buffer.DataLength() == 0:
            reason = "not a constant in the flatbuffer"
        elif buffer.DataLength() != size:
            raise DeviceError(f"tensor {tname!r}: {buffer.DataLength()} data bytes for shape {shape}")
        elif not axis < len(shape) or size == 0:
            reason = f"unexpected {name} filter shape {shape}"
        elif mode == PER_CHANNEL and (axis not in (0, len(shape) - 1) or scales != shape[axis]):
            reason = (f"{scales} scales along axis {axis} of shape {shape}: the DECODE kernel takes axis 0 or the "
                      "last axis, one scale per channel")
        elif aliases:
            reason = f"shares its buffer with {', '.join(aliases)} (the plain data would stay in the file)"
        else:
            values = buffer.DataAsNumpy().view(np.int8).reshape(shape)
            candidates.append(_Candidate(index, tname, name, values, axis, mode))
            continue
        skipped.append(LutTensor(index, tname, name, shape, axis, None, None, None, mode, size, None, None, None,
                                 False, reason))
    return candidates, skipped


def _encoding(c: _Candidate, max_index_bits: int) -> tuple[int, int, int | None, int | None, int | None]:
    """(distinct in the tensor, most distinct in one channel, bits, stored bytes) of c's encoding in its runtime mode
    (bits and stored None if more than 2**max_index_bits values), and what one table for the whole tensor would store
    (None above MAX_INDEX_BITS)."""
    distinct = int(np.unique(c.values).size)
    per_channel = distinct_per_channel(c.values, c.axis)
    most = int(per_channel.max())
    one_table = (lut_stored_bytes(c.values.size, index_bits(distinct), 1, distinct)
                 if index_bits(distinct) <= MAX_INDEX_BITS else None)
    if c.mode == PER_CHANNEL:
        bits, tables, table_len = index_bits(most), len(per_channel), most
    else:
        bits, tables, table_len = index_bits(distinct), 1, distinct
    if bits > max_index_bits:
        return distinct, most, None, None, one_table
    return distinct, most, bits, lut_stored_bytes(c.values.size, bits, tables, table_len), one_table


def _specs(chosen: list[tuple[_Candidate, int]]) -> list[spec.Tensor]:
    return [spec.Tensor(subgraph=0, tensor=c.tensor, compression=[spec.LookUpTableCompression(
        index_bitwidth=bits, mode=spec.PerChannel(axis=c.axis) if c.mode == PER_CHANNEL else spec.PerTensor())])
        for c, bits in chosen]


def _drop_packed_quantization(model_bytes: bytes) -> bytes:
    """The model with no quantization parameters on the DECODE operators' encoded inputs (see the module
    docstring)."""
    model = fb.ModelT.InitFromPackedBuf(model_bytes, 0)
    decode_codes = {i for i, code in enumerate(model.operatorCodes)
                    if code.customCode is not None and (code.customCode.decode() if isinstance(code.customCode, bytes)
                                                        else code.customCode) == DECODE_CUSTOM_OP_NAME}
    for sub in model.subgraphs or []:
        for op in sub.operators or []:
            if op.opcodeIndex in decode_codes:
                for encoded in list(op.inputs)[0::2]:  # inputs are (encoded, ancillary) pairs
                    sub.tensors[encoded].quantization = None
    return pack_model(model, len(model_bytes))


def trim_for_tflm(model_bytes: bytes) -> bytes:
    """The model without what TFLM never reads or reads once: every tensor name emptied (a QAT model's names, the
    whole Keras path of each fused op, take ~10 KB of a 70 KB file), and every per-channel zero-point array whose
    values are all equal (weights: all 0) cut to that one value, which TFLM's allocator expands to every channel
    (micro_allocator.cc: "zero point arrays for weights can be reduced to a single value"); as int64 they are 8 bytes
    a channel, 16% of MatchboxNet's int8 file. Operators, buffers, scales and signatures are kept, so TFLM runs it
    bit-identically. Not for LiteRT, which insists on one zero point per scale."""
    model = fb.ModelT.InitFromPackedBuf(model_bytes, 0)
    for sub in model.subgraphs or []:
        for tensor in sub.tensors or []:
            tensor.name = b""
            zero_points = getattr(tensor.quantization, "zeroPoint", None)
            if zero_points is not None and len(zero_points) > 1 and len(set(np.asarray(zero_points).tolist())) == 1:
                tensor.quantization.zeroPoint = [int(zero_points[0])]
    return pack_model(model, len(model_bytes))


def pack_model(model, size_hint: int) -> bytes:
    """Serializes a schema object-API model, re-aligned with tflite_micro's flatbuffer alignment tool (Python
    flatbuffers ignores the schema's force_align)."""
    builder = flatbuffers.Builder(size_hint + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with tempfile.TemporaryDirectory(prefix="kws_zoo_lut_") as folder:
        unaligned, aligned = os.path.join(folder, "in.tflite"), os.path.join(folder, "out.tflite")
        with open(unaligned, "wb") as f:
            f.write(bytes(builder.Output()))
        tflite_flatbuffer_align_wrapper.align_tflite_model(unaligned, aligned)
        with open(aligned, "rb") as f:
            return f.read()


def _compress(model_bytes: bytes, chosen: list[tuple[_Candidate, int]]) -> bytes:
    with warnings.catch_warnings():
        # The library warns when a tensor grows; lut_compress measures and reports that itself.
        warnings.filterwarnings("ignore", message=r"Compression of tensor .* resulted in expansion")
        try:
            compressed = bytes(compress(model_bytes, _specs(chosen)))
        except CompressionError as err:
            raise DeviceError(f"TFLM LUT compression failed: {err}") from err
    return _drop_packed_quantization(compressed)


def lut_compress(model_bytes: bytes, *, max_index_bits: int = MAX_INDEX_BITS,
                 min_saving_bytes: int = 1) -> tuple[bytes, LutReport]:
    """LUT-compresses every int8 weight tensor whose compression shrinks the file by at least min_saving_bytes.

    Candidates: the constant int8 filters (input 1) of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED in subgraph 0;
    biases are never touched. For each, the smallest index width (1..max_index_bits) holding its distinct values in
    the table mode the runtime decodes (see the module docstring): per channel along the quantized dimension (0 for
    CONV_2D / FULLY_CONNECTED, 3 for depthwise [1, h, w, c] filters) for a per-channel quantized filter, one table
    for a per-tensor quantized one. A tensor is compressed when the file it gives, compressed alone, is at least
    min_saving_bytes smaller than the input (a negative value forces compression that grows the file, e.g. to test
    the runtime). Returns (model bytes, LutReport); when nothing pays (or the combination does not shrink the file)
    the input bytes come back unchanged and the report's note says so.
    """
    model_bytes = bytes(model_bytes)
    if isinstance(max_index_bits, bool) or not isinstance(max_index_bits, int) \
            or not 1 <= max_index_bits <= MAX_INDEX_BITS:
        raise ConfigError(f"max_index_bits must be an integer in 1..{MAX_INDEX_BITS}, got {max_index_bits!r}")
    if isinstance(min_saving_bytes, bool) or not isinstance(min_saving_bytes, int):
        raise ConfigError(f"min_saving_bytes must be an integer, got {min_saving_bytes!r}")
    candidates, skipped = _weight_tensors(model_bytes)
    before = len(model_bytes)
    decided: dict[int, LutTensor] = {t.tensor: t for t in skipped}
    chosen: list[tuple[_Candidate, int]] = []
    for c in candidates:
        distinct, most, bits, stored, one_table = _encoding(c, max_index_bits)
        plain = int(c.values.size)
        fields = dict(tensor=c.tensor, name=c.name, op=c.op, shape=tuple(c.values.shape), channel_axis=c.axis,
                      distinct=distinct, distinct_per_channel=most, bits=bits, mode=c.mode, bytes_before=plain,
                      bytes_stored=stored, per_tensor_bytes=one_table)
        if bits is None:
            held, where = (most, " in a channel") if c.mode == PER_CHANNEL else (distinct, "")
            decided[c.tensor] = LutTensor(**fields, bytes_after=None, compressed=False,
                                          reason=f"{held} values{where} exceed 2**{max_index_bits}")
            continue
        if plain - stored < min_saving_bytes:
            decided[c.tensor] = LutTensor(**fields, bytes_after=None, compressed=False,
                                          reason=f"indices + tables ({stored} B) do not undercut the plain "
                                                 f"tensor ({plain} B)")
            continue
        after = plain + len(_compress(model_bytes, [(c, bits)])) - before
        pays = plain - after >= min_saving_bytes
        decided[c.tensor] = LutTensor(**fields, bytes_after=after, compressed=pays,
                                      reason="" if pays else f"the DECODE bookkeeping eats the saving "
                                                              f"(file {after - plain:+d} B)")
        if pays:
            chosen.append((c, bits))
    ordered = tuple(decided[k] for k in sorted(decided))
    if not chosen:
        return model_bytes, LutReport(ordered, before, before, "no tensor pays for LUT compression: "
                                                               "the model is returned unchanged")
    compressed = _compress(model_bytes, chosen)
    if len(compressed) - before > -min_saving_bytes:
        unchanged = tuple(dataclasses.replace(t, compressed=False, reason="the tensors together do not shrink "
                                              "the file") if t.compressed else t for t in ordered)
        return model_bytes, LutReport(unchanged, before, before, f"compressing {len(chosen)} tensor(s) together "
                                      f"gives {len(compressed)} bytes: the model is returned unchanged")
    bits = sorted({b for _, b in chosen})
    return compressed, LutReport(ordered, before, len(compressed),
                                 f"{len(chosen)} tensor(s) LUT-compressed at {'/'.join(map(str, bits))} bits "
                                 f"({decode_op_count(compressed)} DECODE ops, {len(compressed) - before:+d} bytes)")


def verify_lut(model_bytes: bytes, compressed_bytes: bytes, inputs: np.ndarray,
               arena_size: int | None = None) -> dict:
    """Runs both models on the TFLM interpreter (kws_zoo.device.runtime.TflmModel) over `inputs` (float features,
    quantized with the model's input parameters, or the model's own integer dtype) and checks the raw outputs are
    bit-identical. Raises DeviceError if they differ. Returns {examples, max_abs_diff (0), identical (True),
    file_bytes_before, file_bytes_after, arena_bytes_before, arena_bytes_after, decode_ops}; decode_ops counts the
    DECODE operators of the compressed model's subgraphs.
    """
    plain = TflmModel(model_bytes, arena_size=arena_size)
    packed = TflmModel(compressed_bytes, arena_size=arena_size)
    if (plain.input_shape, plain.input_quant, plain.output_quant) != \
            (packed.input_shape, packed.input_quant, packed.output_quant):
        raise DeviceError("the compressed model's input/output tensors differ from the model's: "
                          f"{plain.input_shape}, {plain.input_quant}, {plain.output_quant} vs "
                          f"{packed.input_shape}, {packed.input_quant}, {packed.output_quant}")
    x, _ = plain.prepare_input(inputs)
    want = plain.predict(x, progress=False)
    got = packed.predict(x, progress=False)
    if want.shape != got.shape:
        raise DeviceError(f"output shapes differ: {want.shape} vs {got.shape}")
    identical = bool(np.array_equal(want, got, equal_nan=np.issubdtype(want.dtype, np.floating)))
    diff = np.abs(want.astype(np.float64) - got.astype(np.float64))
    max_diff = float(np.nanmax(diff)) if diff.size else 0.0
    if not identical:
        raise DeviceError(f"the LUT-compressed model's outputs differ from the model's on TFLM: max |diff| "
                          f"{max_diff:g} over {len(x)} examples ({int(np.count_nonzero(diff))} values)")
    return {"examples": int(len(x)), "max_abs_diff": int(max_diff) if max_diff.is_integer() else max_diff,
            "identical": identical, "file_bytes_before": len(model_bytes), "file_bytes_after": len(compressed_bytes),
            "arena_bytes_before": int(plain.arena_bytes), "arena_bytes_after": int(packed.arena_bytes),
            "decode_ops": decode_op_count(compressed_bytes)}
