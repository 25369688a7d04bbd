"""GPU readiness of the decode loop: every op of the compiled decoder has a GPU kernel in TensorFlow,
and the integer hashing behind its sampling noise runs in GPU memory.

The installed TensorFlow is tensorflow-cpu, whose kernel registry holds no GPU kernels, so the op
types of the decoder's graph (nested function bodies included: the while loop, its conds) with their
dtypes are checked against GPU_KERNEL_OPS. That table was written from TensorFlow's kernel sources
(the file that registers each op's GPU or DEVICE_DEFAULT kernel is named above its rows, under
tensorflow/core/kernels/) and checked against the kernel registry of the tensorflow 2.21.0 GPU wheel
(tensorflow.python.framework.kernels.get_registered_kernels_for_op); where a GPU build is installed,
test_the_table_matches_the_installed_kernel_registry checks it again. On a machine with a GPU the
last test decodes there.

DEVICE: a GPU kernel whose data stays in GPU memory. HOST: TensorFlow's int32 convention
(TODO(b/25387198) in cwise_op_mul_1.cc): the op is placed on the GPU but its int32 tensors live in
host memory and a CPU functor computes it. Correct everywhere, and cheap on the decoder's [B] and
[B, T] shapes; the hashing must not be among them (it runs over [B, V] every step).
"""
from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

DEVICE, HOST = "device", "host"

GPU_KERNEL_OPS: dict[tuple[str, str], str] = {
    # cwise_op_add_1.cc, mlir_generated/gpu_op_add.cc
    ("AddV2", "T=float32"): DEVICE,
    ("AddV2", "T=int32"): HOST,
    ("AddV2", "T=uint32"): DEVICE,
    # reduction_ops_any.cc
    ("Any", "Tidx=int32"): DEVICE,
    # argmax_op.cc
    ("ArgMax", "T=float32 Tidx=int32 output_type=int32"): DEVICE,
    # bias_op.cc
    ("BiasAdd", "T=float32"): DEVICE,
    # bitcast_op.cc
    ("Bitcast", "T=float32 type=int32"): DEVICE,
    ("Bitcast", "T=uint32 type=float32"): DEVICE,
    # mlir_generated/gpu_op_bitwise_or.cc
    ("BitwiseOr", "T=uint32"): DEVICE,
    # mlir_generated/gpu_op_bitwise_xor.cc
    ("BitwiseXor", "T=uint32"): DEVICE,
    # cast_op.cc, mlir_generated/gpu_op_cast.cc
    ("Cast", "DstT=float32 SrcT=bool"): DEVICE,
    ("Cast", "DstT=int32 SrcT=bool"): DEVICE,
    ("Cast", "DstT=int32 SrcT=int32"): DEVICE,
    ("Cast", "DstT=int32 SrcT=int8"): DEVICE,
    ("Cast", "DstT=uint32 SrcT=int32"): DEVICE,
    # concat_op.cc
    ("ConcatV2", "T=float32 Tidx=int32"): DEVICE,
    ("ConcatV2", "T=int32 Tidx=int32"): HOST,  # DEVICE_DEFAULT
    # constant_op.cc
    ("Const", "dtype=bool"): DEVICE,
    ("Const", "dtype=float32"): DEVICE,
    ("Const", "dtype=int32"): HOST,  # DEVICE_DEFAULT
    ("Const", "dtype=int8"): DEVICE,
    ("Const", "dtype=uint32"): DEVICE,
    # scan_ops.cc
    ("Cumsum", "T=float32 Tidx=int32"): DEVICE,
    # bincount_op.cc
    ("DenseBincount", "T=float32 Tidx=int32"): DEVICE,
    # cwise_op_equal_to_1.cc, mlir_generated/gpu_op_equal.cc
    ("Equal", "T=int32"): HOST,
    ("Equal", "T=int8"): DEVICE,
    # mlir_generated/gpu_op_exp.cc
    ("Exp", "T=float32"): DEVICE,
    # shape_ops.cc
    ("ExpandDims", "T=int32 Tdim=int32"): HOST,
    # constant_op.cc
    ("Fill", "T=bool index_type=int32"): DEVICE,
    ("Fill", "T=float32 index_type=int32"): DEVICE,
    ("Fill", "T=int32 index_type=int32"): HOST,  # DEVICE_DEFAULT
    # gather_nd_op.cc
    ("GatherNd", "Tindices=int32 Tparams=float32"): DEVICE,
    # gather_op.cc
    ("GatherV2", "Taxis=int32 Tindices=int32 Tparams=float32"): DEVICE,
    # cwise_op_greater.cc, mlir_generated/gpu_op_greater.cc
    ("Greater", "T=float32"): DEVICE,
    ("Greater", "T=int32"): HOST,
    # cwise_op_greater_equal.cc, mlir_generated/gpu_op_greater_equal.cc
    ("GreaterEqual", "T=float32"): DEVICE,
    ("GreaterEqual", "T=int32"): HOST,
    # identity_op.cc
    ("Identity", "T=bool"): DEVICE,
    ("Identity", "T=float32"): DEVICE,
    ("Identity", "T=int32"): HOST,
    ("Identity", "T=variant"): DEVICE,
    # functional_ops.cc
    ("If", "Tcond=bool"): DEVICE,  # DEVICE_DEFAULT
    # mlir_generated/gpu_op_is_finite.cc
    ("IsFinite", "T=float32"): DEVICE,
    # cwise_op_less.cc, mlir_generated/gpu_op_less.cc
    ("Less", "T=float32"): DEVICE,
    ("Less", "T=int32"): HOST,
    # mlir_generated/gpu_op_log.cc
    ("Log", "T=float32"): DEVICE,
    # mlir_generated/gpu_op_logical_and.cc
    ("LogicalAnd", ""): DEVICE,
    # mlir_generated/gpu_op_logical_not.cc
    ("LogicalNot", ""): DEVICE,
    # mlir_generated/gpu_op_logical_or.cc
    ("LogicalOr", ""): DEVICE,
    # matmul_op_real.cc
    ("MatMul", "T=float32"): DEVICE,
    # reduction_ops_max.cc
    ("Max", "T=float32 Tidx=int32"): DEVICE,
    ("Max", "T=int32 Tidx=int32"): HOST,  # DEVICE_DEFAULT
    # cwise_op_maximum.cc, mlir_generated/gpu_op_maximum.cc
    ("Maximum", "T=float32"): DEVICE,
    ("Maximum", "T=int32"): HOST,
    # cwise_op_minimum.cc, mlir_generated/gpu_op_minimum.cc
    ("Minimum", "T=int32"): HOST,
    # cwise_op_mul_1.cc, mlir_generated/gpu_op_mul.cc
    ("Mul", "T=float32"): DEVICE,
    ("Mul", "T=int32"): HOST,
    ("Mul", "T=uint32"): DEVICE,
    # no_op.cc
    ("NoOp", ""): DEVICE,  # DEVICE_DEFAULT
    # mlir_generated/gpu_op_not_equal.cc
    ("NotEqual", "T=float32"): DEVICE,
    # one_hot_op.cc
    ("OneHot", "T=float32 TI=int32"): DEVICE,
    # mlir_generated/gpu_op_ones_like.cc
    ("OnesLike", "T=float32"): DEVICE,
    # pack_op.cc
    ("Pack", "T=int32"): HOST,
    # constant_op.cc
    ("Placeholder", "dtype=bool"): DEVICE,  # DEVICE_DEFAULT
    ("Placeholder", "dtype=float32"): DEVICE,  # DEVICE_DEFAULT
    ("Placeholder", "dtype=int32"): DEVICE,  # DEVICE_DEFAULT
    ("Placeholder", "dtype=int8"): DEVICE,  # DEVICE_DEFAULT
    ("Placeholder", "dtype=resource"): DEVICE,  # DEVICE_DEFAULT
    ("Placeholder", "dtype=uint32"): DEVICE,  # DEVICE_DEFAULT
    # sequence_ops.cc
    ("Range", "Tidx=int32"): HOST,  # DEVICE_DEFAULT
    # resource_variable_ops.cc
    ("ReadVariableOp", "dtype=float32"): DEVICE,  # DEVICE_DEFAULT
    # mlir_generated/gpu_op_div.cc
    ("RealDiv", "T=float32"): DEVICE,
    # reshape_op.cc
    ("Reshape", "T=float32 Tshape=int32"): DEVICE,
    ("Reshape", "T=int32 Tshape=int32"): HOST,
    # mlir_generated/gpu_op_right_shift.cc
    ("RightShift", "T=int32"): DEVICE,
    ("RightShift", "T=uint32"): DEVICE,
    # cwise_op_select.cc
    ("SelectV2", "T=float32"): DEVICE,
    ("SelectV2", "T=int32"): DEVICE,
    # shape_ops.cc
    ("Shape", "T=float32 out_type=int32"): HOST,
    ("Shape", "T=int32 out_type=int32"): HOST,
    # cwise_op_sigmoid.cc
    ("Sigmoid", "T=float32"): DEVICE,
    # shape_ops.cc
    ("Size", "T=int32 out_type=int32"): HOST,
    # split_op.cc
    ("Split", "T=float32"): DEVICE,
    # shape_ops.cc
    ("Squeeze", "T=float32"): DEVICE,
    # functional_ops.cc
    ("StatelessIf", "Tcond=bool"): DEVICE,  # DEVICE_DEFAULT
    # identity_op.cc
    ("StopGradient", "T=float32"): DEVICE,
    # strided_slice_op.cc
    ("StridedSlice", "Index=int32 T=bool"): DEVICE,
    ("StridedSlice", "Index=int32 T=float32"): DEVICE,
    ("StridedSlice", "Index=int32 T=int32"): HOST,
    ("StridedSlice", "Index=int32 T=int8"): DEVICE,
    ("StridedSlice", "Index=int32 T=uint32"): DEVICE,
    # cwise_op_sub.cc, mlir_generated/gpu_op_sub.cc
    ("Sub", "T=float32"): DEVICE,
    ("Sub", "T=int32"): HOST,
    # reduction_ops_sum.cc
    ("Sum", "T=float32 Tidx=int32"): DEVICE,
    ("Sum", "T=int32 Tidx=int32"): HOST,  # DEVICE_DEFAULT
    # mlir_generated/gpu_op_tanh.cc
    ("Tanh", "T=float32"): DEVICE,
    # list_kernels.cc
    ("TensorListReserve", "element_dtype=int32 shape_type=int32"): DEVICE,
    # list_kernels.cc (every GPU type; the per-position log-probabilities the rescorer reads)
    ("TensorListReserve", "element_dtype=float32 shape_type=int32"): DEVICE,
    ("TensorListSetItem", "element_dtype=float32"): DEVICE,
    ("TensorListStack", "element_dtype=float32"): DEVICE,
    # list_kernels.cc
    ("TensorListSetItem", "element_dtype=int32"): DEVICE,
    # list_kernels.cc
    ("TensorListStack", "element_dtype=int32"): DEVICE,
    # scatter_nd_op.cc
    ("TensorScatterAdd", "T=int32 Tindices=int32"): HOST,  # DEVICE_DEFAULT
    # scatter_nd_op.cc (TF_CALL_GPU_NUMBER_TYPES: the doubled-character penalty)
    ("TensorScatterAdd", "T=float32 Tindices=int32"): DEVICE,
    # scatter_nd_op.cc
    ("TensorScatterMax", "T=int32 Tindices=int32"): HOST,  # DEVICE_DEFAULT
    # scatter_nd_op.cc
    ("TensorScatterMin", "T=float32 Tindices=int32"): DEVICE,
    # tile_ops.cc
    ("Tile", "T=int32 Tmultiples=int32"): DEVICE,
    # transpose_op.cc
    ("Transpose", "T=int32 Tperm=int32"): DEVICE,
    ("Transpose", "T=float32 Tperm=int32"): DEVICE,
    # functional_ops.cc
    ("While", ""): DEVICE,  # DEVICE_DEFAULT
}


def op_signatures(concrete) -> set[tuple[str, str]]:
    """(op type, its type attributes) of every node of a traced function and of every function its
    graph calls (while bodies and conditions, cond branches), recursively: the library holds them all."""
    graph = concrete.graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    out = set()
    for node in nodes:
        types = sorted((k, tf.dtypes.as_dtype(v.type).name) for k, v in node.attr.items()
                       if v.WhichOneof("value") == "type")
        out.add((node.op, " ".join(f"{k}={name}" for k, name in types)))
    return out


@pytest.fixture(scope="module")
def styled_generator(tiny_model_dir, tmp_path_factory):
    """The tiny model with one style adapter: the decoder's graph then holds the style branch too."""
    from model.decode import Generator
    from search.files import model_version
    from model.styles import random_adapter, save_style

    styles = tmp_path_factory.mktemp("styles")
    save_style(styles, "alpha", random_adapter(tiny_model_dir, seed=1, scale=0.5),
               {"title": "甲", "base_version": model_version(tiny_model_dir)})
    generator = Generator.load(tiny_model_dir, novelty=False, styles_dir=styles)
    assert generator.styles and generator.styles.ids == ["alpha"]
    return generator


def test_every_op_of_the_decoder_has_a_gpu_kernel(styled_generator) -> None:
    ops = op_signatures(styled_generator.decoder._fn.get_concrete_function())
    assert ("While", "") in ops and ("DenseBincount", "T=float32 Tidx=int32") in ops, "the loop body was traced"
    missing = sorted(ops - GPU_KERNEL_OPS.keys())
    assert not missing, f"ops with no GPU kernel known to GPU_KERNEL_OPS (check TensorFlow's kernels): {missing}"


def test_the_integer_hashing_runs_in_gpu_memory_and_is_lowbias32() -> None:
    """exp_noise's hash is uint32 multiply, add, xor, or, shift and bitcast: every one a GPU kernel in
    device memory (uint32 Mul through the int32 kernel of mlir_generated/gpu_op_mul.cc: a wrap-around
    multiply has the same bits signed or unsigned). The hash is the numpy lowbias32 below bit for bit,
    and the noise made from it the same up to float32 rounding of the log."""
    from model.decode import _mix32 as mix32, exp_noise, token_keys

    fn = tf.function(exp_noise, input_signature=[tf.TensorSpec([None], tf.uint32),
                                                 tf.TensorSpec([None, 2], tf.uint32), tf.TensorSpec([], tf.int32)])
    ops = op_signatures(fn.get_concrete_function())
    integer = {(op, sig) for op, sig in ops if "int" in sig}
    assert ("Mul", "T=uint32") in integer and ("BitwiseXor", "T=uint32") in integer
    assert {GPU_KERNEL_OPS.get(o) for o in integer if o[0] not in ("Const", "Placeholder")} == {DEVICE}, integer

    keys = token_keys(300)
    seeds = np.random.default_rng(0).integers(0, 2**32, (5, 2), dtype=np.uint64).astype(np.uint32)
    assert np.array_equal(mix32(tf.constant(keys)).numpy(), _mix32(keys))
    for step in (0, 1, 37):
        got = fn(tf.constant(keys), tf.constant(seeds), tf.constant(step)).numpy()
        np.testing.assert_allclose(got, reference_noise(keys, seeds, step), rtol=1e-5)


def _mix32(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def reference_noise(keys: np.ndarray, seeds: np.ndarray, step: int) -> np.ndarray:
    """model.decode.exp_noise in numpy (uint32 arithmetic wraps the same way)."""
    with np.errstate(over="ignore"):
        t = np.uint32(step) * np.uint32(0x9E3779B9)
        row = _mix32(seeds[:, 0] + t) ^ seeds[:, 1]
        h = (row[:, None] ^ keys[None, :]) * np.uint32(0x7FEB352D)
        h = (h ^ (h >> np.uint32(15))) * np.uint32(0x846CA68B)
    u = ((h >> np.uint32(9)) | np.uint32(0x3F800000)).view(np.float32) - np.float32(0.99999994)
    return (np.float32(-1.0) / np.log(u)).astype(np.float32)


def _gpu_registry() -> dict[str, list]:
    from tensorflow.python.framework import kernels

    if not any(k.device_type == "GPU" for k in kernels.get_registered_kernels_for_op("MatMul").kernel):
        return {}
    return {op: [k for k in kernels.get_registered_kernels_for_op(op).kernel if k.device_type in ("GPU", "DEFAULT")]
            for op in {op for op, _ in GPU_KERNEL_OPS}}


def test_the_table_matches_the_installed_kernel_registry() -> None:
    registry = _gpu_registry()
    if not registry:
        pytest.skip("this TensorFlow (tensorflow-cpu) registers no GPU kernels; GPU_KERNEL_OPS was checked "
                    "against the tensorflow 2.21.0 GPU wheel's registry")
    for (op, sig), memory in GPU_KERNEL_OPS.items():
        attrs = dict(part.split("=") for part in sig.split())
        fits = [k for k in registry[op] if all(
            c.name not in attrs or attrs[c.name] in {tf.dtypes.as_dtype(t).name for t in c.allowed_values.list.type}
            for c in k.constraint)]
        assert fits, f"{op} {sig}: no GPU kernel registered"
        kernel = next((k for k in fits if k.device_type == "GPU"), fits[0])
        data_on_host = bool(set(kernel.host_memory_arg) & {"x", "y", "z", "input", "output", "tensor", "values"})
        assert (HOST if data_on_host else DEVICE) == memory, (op, sig, list(kernel.host_memory_arg))


@pytest.mark.skipif(not tf.config.list_physical_devices("GPU"),
                    reason="no GPU here (tensorflow-cpu, or no device): the decode on /GPU:0 runs where one is")
def test_one_decode_on_the_gpu(styled_generator) -> None:
    from model.requests import PoemRequest

    from model.decode import _mix32 as mix32, exp_noise

    keys = styled_generator.decoder.keys.numpy()
    seeds = np.array([[1, 2], [3, 4]], np.uint32)
    with tf.device("/GPU:0"):
        hashed = tf.function(mix32)(tf.constant(keys))
        noise = tf.function(lambda k, s: exp_noise(k, s, 3))(tf.constant(keys), tf.constant(seeds))
        assert "GPU" in hashed.device and "GPU" in noise.device
        results = styled_generator.run([PoemRequest(form="五绝", seed=5, novelty=False, best_of=2),
                                        PoemRequest(form="七绝", seed=6, novelty=False, style="alpha")])
    assert np.array_equal(hashed.numpy(), _mix32(keys))
    np.testing.assert_allclose(noise.numpy(), reference_noise(keys, seeds, 3), rtol=1e-5)
    assert all(r.ok for r in results), [r.error_message for r in results]
    assert [len(r.poems[0]["lines"]) for r in results] == [4, 4]
