"""Video without flicker: optical flow, warping and the consistency mask (`flow`), the temporal
warping error (`metrics`). The files themselves are read and written by `jaxstyle.io.video`."""
