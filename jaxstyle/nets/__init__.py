"""Trainable networks (flax modules) and what trains and applies them.

`layers` (blocks shared by the networks, `map_by_shape`), `transform` (Johnson et al.'s network),
`gan` (CycleGAN's generator and discriminator), `training` (fast-network training), `cyclegan`
(CycleGAN training and translation), `fast` (painting with a fast network), `runs` (what every
trainer shares: progress record, step loop, checkpoints), `model_file` (msgpack model files),
`photos` (folders of photos).
"""
