"""Runs each notebook end to end at a small size and checks that it wrote its figures."""

import os
import sys
import time

import pytest
from conftest import REAL_WEIGHTS, REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = REPO / "notebooks"
KERNEL = "python3"

# Parameters small enough that compiling dominates; each notebook reads FIGURES for its output folder.
CASES = {
    "alpha_beta_sweep": (dict(SIZE=48, STEPS=2), ["alpha_beta_sweep.png"]),
    "reconstructions": (dict(SIZE=48, STEPS=2), ["reconstructions.png"]),
    # One size for everything: the scales=1 comparison reuses the compiled full-size step.
    # 86 px is the smallest 4:3 size whose half (43 x 32 px) still fits conv5_1.
    "controls": (dict(SIZE=86, STEPS=2, C2F_SIZE=86, C2F_SCALES=2),
                 ["controls_init.png", "controls_colors.png", "controls_coarse_to_fine.png", "controls_mask.png"]),
    "fast_networks": (dict(SIZE=32, STEPS=2, WIDTH=4, APPLY_SIZE=64, OPT_STEPS=2),
                      ["fast_training_loss.png", "fast_vs_optimisation.png", "fast_interpolation.png"]),
    "cyclegan": (dict(SIZE=32, STEPS=2, WIDTH=4, BLOCKS=1, DISC_WIDTH=4, APPLY_SIZE=64),
                 ["cyclegan_training_loss.png", "cyclegan_translation.png"]),
}


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A python3 kernelspec for *this* interpreter, found first; the weights.

    A user-wide `python3` kernelspec may point at another Python; writing our own into a folder
    on JUPYTER_PATH (searched before the user's and the venv's folders) makes the kernel run in the
    interpreter that runs the tests. Identical programs (settings that differ only in init, seed or
    colour mode compile to the same program) are shared through the session's persistent compilation
    cache, $JAX_COMPILATION_CACHE_DIR (conftest), which the kernels inherit.
    """
    from ipykernel.kernelspec import write_kernel_spec

    jupyter = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(jupyter / "kernels" / KERNEL, overrides={"display_name": "jaxstyle tests"})
    patch = pytest.MonkeyPatch()
    patch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(jupyter), os.environ.get("JUPYTER_PATH")])))
    patch.setenv("JAXSTYLE_WEIGHTS", str(REAL_WEIGHTS))  # what load_params() reads in the notebooks
    yield
    patch.undo()


def with_parameters(nb, values: dict) -> None:
    """Overrides values of the notebook's `parameters` cell (appended to it, as papermill does)."""
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "a notebook needs exactly one cell tagged `parameters`"
    assert nb.cells.index(cells[0]) == next(i for i, c in enumerate(nb.cells) if c.cell_type == "code"), \
        "the `parameters` cell must be the first code cell"
    names = {line.split("=")[0].strip() for line in cells[0].source.splitlines() if "=" in line}
    assert set(values) <= names, f"unknown parameters {set(values) - names}"
    cells[0].source += "\n# test overrides\n" + "\n".join(f"{name} = {value}" for name, value in values.items())


@pytest.mark.parametrize("name", list(CASES))
def test_notebook_is_committed_with_the_outputs_of_a_real_run(name):
    """So that their pictures show where the repository is browsed."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    images = [o for o in outputs if "image/jpeg" in o.get("data", {})]
    assert len(images) >= len(CASES[name][1]), f"{name}: commit it with the outputs of a real run"
    # JPEG inline figures: as PNG these pictures made notebooks of 2-5 MB.
    assert not any("image/png" in o.get("data", {}) for o in outputs), name
    assert (NOTEBOOKS / f"{name}.ipynb").stat().st_size < 1_500_000, f"{name}: too large to commit"


@pytest.mark.real_weights
@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_notebook_runs_and_saves_figures(name, kernel_env, tmp_path):
    values, figures = CASES[name]
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    with_parameters(nb, {**values, "FIGURES": repr(str(tmp_path))})
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=600,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    for figure in figures:
        path = tmp_path / figure
        assert path.is_file() and path.stat().st_size > 1000, f"{name} did not write {figure}"
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/jpeg" in o.get("data", {})]
    assert len(shown) >= len(figures), f"{name} showed {len(shown)} figures inline, expected {len(figures)}"
