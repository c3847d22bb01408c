"""Independent NumPy references for the VGG-19 forward pass, written without JAX."""

import numpy as np

POOL_AFTER = {"conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"}
CONVS = [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)) for i in range(1, n + 1)]


def conv3x3_relu(x, kernel, bias):
    """Direct 3x3 convolution, zero padding 1, stride 1, then ReLU. x: [h, w, cin]; kernel HWIO."""
    h, w, _ = x.shape
    padded = np.pad(x.astype(np.float64), ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, kernel.shape[3]))
    for dy in range(3):
        for dx in range(3):
            out += padded[dy:dy + h, dx:dx + w, :] @ kernel[dy, dx].astype(np.float64)
    return np.maximum(out + bias, 0.0)


def pool2x2(x, pooling):
    h, w, c = x.shape
    blocks = x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c)
    return blocks.max(axis=(1, 3)) if pooling == "max" else blocks.mean(axis=(1, 3))


def forward(params, image, pooling, upto):
    """{layer: activation} for every conv/pool layer up to and including `upto`."""
    x = image.astype(np.float64) @ params["input"]["matrix"] + params["input"]["offset"]
    out = {}
    for name in CONVS:
        x = conv3x3_relu(x, params[name]["kernel"], params[name]["bias"])
        out[name] = x
        if name == upto:
            return out
        if name in POOL_AFTER:
            x = pool2x2(x, pooling)
            out["pool" + name[4]] = x
            if out.keys() >= {upto}:
                return out
    return out
