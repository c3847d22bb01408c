"""Files in and out: images, weights (and the formats they come in), sidecars, plots."""
