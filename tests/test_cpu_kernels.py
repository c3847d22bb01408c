"""The CPU kernel choice: the instruction set read from /proc/cpuinfo and XLA_FLAGS, the choice
made from it, and that both kernel sets compute the VGG forward pass of the NumPy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference as ref
import pytest

from jaxstyle import runtime, vgg
from jaxstyle.errors import JaxstyleError
from jaxstyle.optim import solver

AVX2_CPU = "processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2\n"
AVX512_CPU = "flags\t\t: fpu sse4_2 avx avx2 avx512f avx512dq avx512_bf16\n"


@pytest.mark.parametrize("cpuinfo, xla_flags, expected", [
    (AVX2_CPU, "", "AVX2"),
    (AVX512_CPU, "", "AVX512"),
    (AVX512_CPU, "--xla_force_host_platform_device_count=8 --xla_cpu_max_isa=AVX2", "AVX2"),
    (AVX512_CPU, "--xla_cpu_max_isa=avx", "AVX"),
    (AVX2_CPU, "--xla_cpu_max_isa=AVX512", "AVX2"),  # a cap never raises the level
    ("flags\t\t: fpu sse2\n", "", None),
    ("processor\t: 0\nFeatures\t: fp asimd\n", "", None),  # aarch64
])
def test_instruction_set_from_cpuinfo_and_cap(cpuinfo, xla_flags, expected):
    assert runtime.cpu_isa(cpuinfo, xla_flags) == expected


def test_choice_by_instruction_set_and_override():
    assert runtime.choose("auto", "AVX2") == "eigen"
    assert runtime.choose("auto", "AVX") == "eigen"
    assert runtime.choose("auto", "AVX512") == "eigen"
    assert runtime.choose("auto", "SSE4_2") == "ynnpack"
    assert runtime.choose("auto", None) == "ynnpack"
    assert runtime.choose("ynnpack", "AVX2") == "ynnpack"
    assert runtime.choose("eigen", "AVX512") == "eigen"
    with pytest.raises(JaxstyleError, match="JAXSTYLE_CPU_KERNELS"):
        runtime.choose("fast", "AVX2")


@pytest.mark.parametrize("kernels", ["ynnpack", "eigen"])
def test_both_kernel_sets_match_the_numpy_forward_pass_and_each_other(tiny_params, kernels):
    image = np.random.default_rng(2).random((21, 26, 3), dtype=np.float32)
    layers = ("conv1_1", "conv2_1", "conv3_1", "conv4_2", "conv5_1")

    def loss(x):
        f = vgg.features(tiny_params, x, layers=layers)
        return sum(jnp.sum(jnp.square(f[n])) for n in layers), f

    program = jax.jit(jax.value_and_grad(loss, has_aux=True)).lower(image).compile(
        compiler_options=runtime.options(kernels))
    (_, got), grad = program(image)
    expected = ref.forward(tiny_params, image, "avg", upto="conv5_1")
    for name in layers:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
    # The gradient against the other kernel set (XLA's default).
    (_, _), default_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(image)
    np.testing.assert_allclose(grad, default_grad, rtol=1e-4, atol=1e-6)


def test_options_select_the_kernels():
    # A convolution big enough for XLA to hand it to YNNPACK unless the option says otherwise.
    x, kernel = jnp.ones((1, 32, 32, 64)), jnp.ones((3, 3, 64, 64))

    def conv(x):
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def compiled_text(kernels):
        return jax.jit(conv).lower(x).compile(compiler_options=runtime.options(kernels)).as_text()

    assert "ynn_fusion" in compiled_text("ynnpack")
    assert "ynn" not in compiled_text("eigen")


def test_jit_runs_top_level_and_nested():
    calls = runtime.jit(lambda x: jnp.sum(x * 2.0))
    assert float(calls(jnp.ones(3))) == 6.0
    assert calls._cache_size() == 1
    assert float(calls(jnp.full(3, 2.0, jnp.float32))) == 12.0 and calls._cache_size() == 1
    # Inside another transformation the options cannot apply; the plain jit serves.
    shape = jax.eval_shape(lambda x: calls(x) + 1.0, jnp.ones(3))
    assert shape.shape == () and float(jax.jit(lambda x: calls(x))(jnp.ones(3))) == 6.0


@pytest.mark.parametrize("batch", [1, 3])
def test_vmap_unless_one_equals_vmap(batch):
    def fn(scale, x, pair):
        return {"sum": scale * jnp.sum(x), "outer": jnp.outer(pair[0], pair[1])}

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((batch, 4, 5)), jnp.float32)
    pair = (jnp.asarray(rng.random((batch, 3)), jnp.float32), jnp.asarray(rng.random((batch, 2)), jnp.float32))
    got = solver.vmap_unless_one(fn, in_axes=(None, 0, 0))(2.0, x, pair)
    expected = jax.vmap(fn, in_axes=(None, 0, 0))(2.0, x, pair)
    assert jax.tree.map(jnp.shape, got) == jax.tree.map(jnp.shape, expected)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
