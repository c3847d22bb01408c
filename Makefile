# Every target does its own set-up: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
WEIGHTS := weights/vgg19.h5
export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/.jax_cache

.PHONY: install weights weights-normalized demo test clean

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

test: install weights
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) $(WEIGHTS) outputs .jax_cache .pytest_cache
