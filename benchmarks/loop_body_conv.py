"""Why jaxstyle's line search runs in Python: XLA:CPU runs VGG-19 value+grad inside a
`lax.while_loop` or `lax.cond` body several times slower than at the top level (jax issue #12868).

    .venv/bin/python benchmarks/loop_body_conv.py     # prints the median seconds of each
"""
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import data_path, losses, optim
from jaxstyle.io import image_io, weights

P = weights.load_params()
c = image_io.load_image(data_path("tubingen.jpg")); s = image_io.load_image(data_path("starry_night.jpg"))
st = optim.Settings(size=128)
pr = optim.prepare(optim.make_task(c, s, st), st.size)
t = losses.make_targets(P, pr.content, pr.styles)
w = jax.tree.map(jnp.asarray, st.loss_weights())
cw, sw = st.layer_weights()
loss = lambda P, x, t, w: losses.total_loss(P, x, t, w, content_layer_weights=cw, style_layer_weights=sw)
f = lambda x: loss(P, x, t, w)[0]
vg = jax.jit(jax.value_and_grad(f))
def in_loop(x):
    def body(c):
        i, x, v, g = c
        v, g = jax.value_and_grad(f)(x)
        return i+1, x, v, g
    return jax.lax.while_loop(lambda c: c[0] < 1, body, (0, x, 0.0, jnp.zeros_like(x)))[2:]
il = jax.jit(in_loop)
def in_cond(x, flag):
    return jax.lax.cond(flag, jax.value_and_grad(f), lambda x: (0.0, x), x)
ic = jax.jit(in_cond)
x = jnp.asarray(pr.content)
for name, fn in [("plain", lambda: vg(x)), ("while", lambda: il(x)), ("cond", lambda: ic(x, True))]:
    jax.block_until_ready(fn())
    ts=[]
    for _ in range(5):
        t0=time.perf_counter(); jax.block_until_ready(fn()); ts.append(time.perf_counter()-t0)
    print(name, np.median(ts))
