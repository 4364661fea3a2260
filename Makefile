# Two commands: `make book` (install, run every notebook for $(PROFILE), build the site)
# and `make test` (the linter, unit tests and docstring examples, the smoke notebook chain and a book build).
PROFILE ?= quick
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# CPU machines take the local CPU wheel of torch; a GPU machine may override this,
# e.g. `make book TORCH_SPEC=torch` (the package itself only requires torch>=2.2).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
MATHJAX := node_modules/mathjax/es5/tex-chtml.js

.PHONY: install book test clean-book clean-runs

install: $(STAMP) $(MATHJAX)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

$(MATHJAX): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

book: install
	$(PY) -m lsutils run --profile $(PROFILE)

test: install
	$(PY) -m ruff check
	$(PY) -m pytest

clean-book:
	rm -rf book/_build book/notebooks book/_extra

clean-runs:
	rm -rf data/runs/$(PROFILE)
