"""The `jaxstyle` command: stylize, sweep, batch, demo (`cli.stylize`), train, apply, cyclegan
(`cli.networks`), video (`cli.video`), weights (`cli.weights`); the option helpers they share are in
`cli.options`."""

from __future__ import annotations

import argparse
import gc
import sys

from jaxstyle import optim, runtime
from jaxstyle.cli import networks as cli_networks
from jaxstyle.cli import stylize as cli_stylize
from jaxstyle.cli import video as cli_video
from jaxstyle.cli import weights as cli_weights
from jaxstyle.cli.options import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_NON_FINITE
from jaxstyle.errors import JaxstyleError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxstyle", description="Neural style transfer (Gatys, Ecker & Bethge 2016) in JAX.",
        epilog="Exit status: 0 done; 2 bad input (argparse's own usage errors too), before any work; 3 a loss "
               "became NaN/inf; 4 some batch jobs failed; 130 interrupted.")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_stylize.add_parsers(sub)
    cli_networks.add_train_parser(sub)
    cli_networks.add_apply_parser(sub)
    cli_networks.add_cyclegan_parser(sub)
    cli_video.add_video_parser(sub)
    cli_weights.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the `jaxstyle` command line; returns the exit status (0, or EXIT_* on an error)."""
    args = build_parser().parse_args(argv)
    try:
        runtime.setting()  # a bad JAXSTYLE_CPU_KERNELS is refused before any work
        return {"stylize": cli_stylize.run_stylize, "sweep": cli_stylize.run_sweep, "demo": cli_stylize.run_demo,
                "batch": cli_stylize.run_batch, "train": cli_networks.run_train, "apply": cli_networks.run_apply,
                "cyclegan": cli_networks.run_cyclegan, "video": cli_video.run_video,
                "weights": cli_weights.run}[args.command](args)
    except optim.NonFiniteLoss as e:
        print(f"jaxstyle: error: {e}", file=sys.stderr)
        return EXIT_NON_FINITE
    except JaxstyleError as e:
        print(f"jaxstyle: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("jaxstyle: interrupted; finished outputs are kept", file=sys.stderr)
        return EXIT_INTERRUPTED


def run() -> None:
    """The `jaxstyle` executable (and `python -m jaxstyle`): `main`, then exit with its status."""
    # The objects the imports made (JAX, flax) live as long as the process: frozen, the collector leaves them
    # out of every pass while the run traces its programs (~0.05 s), and out of the interpreter's last
    # collections at exit (~0.15 s of each run; atexit handlers still run).
    gc.freeze()
    code = main()
    gc.freeze()
    sys.exit(code)
