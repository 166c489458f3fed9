# palsy: `make demo` and `make test` set everything up themselves.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PALSY_CACHE ?= $(HOME)/.cache/palsy
# Bytecode caches are written (the venv and the checkout's __pycache__, which git ignores): the tests start
# about 135 `palsy` processes and more, and where $$PYTHONDONTWRITEBYTECODE is set (as on this machine and CI) each
# compiled numpy, matplotlib, WeasyPrint (the PDF printer then) and palsy from source again (measured on 2 cores: 5.5 s against 1.9 s
# to import a report's modules). Compiling the whole venv at install instead (uv --compile-bytecode) cost
# about 80 s more set-up on a clean clone, for modules no process imports.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup setup-test fonts browser demo test test-fast test-heavy lint benchmark examples clean

# What the demo needs: the venv, the runtime dependencies and Chromium (the PDF report's printer). The tests
# add their own tools and fonts.
setup: $(VENV)/.installed browser
setup-test: $(VENV)/.installed-test browser fonts

# uv (Astral's installer) installs the same requirements in seconds where pip takes over a minute (measured
# on 2 cores from empty caches: 5 s against 68 s for the runtime dependencies, 4 s against 17 s for the
# test tools); pip installs them where uv cannot be had or fails (no network to its index, say).
INSTALL = { [ -x $(VENV)/bin/uv ] && $(VENV)/bin/uv pip install -q --python $(PY) $(1); } \
	  || $(PY) -m pip install -q $(1)

$(VENV)/.installed: pyproject.toml
	@PYTHON=$$(./scripts/find-python.sh) || exit 1; \
	  [ -x $(PY) ] || $$PYTHON -m venv $(VENV)
	@$(PY) -m pip install -q uv || echo "uv not available: installing with pip"
	$(call INSTALL,-e .)
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(call INSTALL,-e '.[test]')
	@touch $@

# Debian's Chromium: it prints the PDF reports (reports/pdf.py) and runs the pages' browser tests. Installed
# where missing and allowed; elsewhere `python -m playwright install chromium` fetches one without root.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian chromium for the PDF report and the browser tests"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "warning: chromium not found and cannot be installed here: the PDF report and the browser tests will fail" \
	    "(palsy report --format html needs none; $(PY) -m playwright install chromium fetches one)"; fi; }

# Fonts for the report tests: any Unicode text (CJK, emoji, Arabic, Hebrew) must render (a test fails on a
# missing glyph). Not part of `make demo`, which renders with whatever fonts the machine has.
fonts:
	@fc-list ':charset=6f22' family | grep -q . && fc-list ':charset=1f9ea' family | grep -q . \
	  && fc-list ':charset=627' family | grep -q . || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Noto fonts (CJK, colour emoji, Arabic, Hebrew) for the report tests"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk \
	      fonts-noto-color-emoji fonts-noto-core fontconfig >/dev/null && fc-cache -f >/dev/null; \
	  else echo "warning: CJK/emoji/RTL fonts missing and cannot be installed here; the Unicode report test will fail"; fi; }

demo: setup
	$(VENV)/bin/palsy fit
	$(VENV)/bin/palsy fit --variant independent  # the other variant: each answer names it when they disagree
	@for p in patients/*.yaml; do echo; echo "=== $$p"; $(VENV)/bin/palsy posterior --patient $$p || exit 1; done
	$(VENV)/bin/palsy report patients/*.yaml --out out/reports
	@echo; echo "reports written to out/reports/"

# Two workers (pytest-xdist): model compilation is single-threaded, so two fits compile side by side;
# tests that fit the same small model share a worker (xdist_group), so it is compiled once.
# One BLAS thread per process: two workers share the 2 cores, and OpenBLAS's second thread per worker only
# contended with the other worker (measured: test_answer and test_clinical on two workers, 93-102 s against
# 111-112 s).
test: setup-test
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m pytest -q -ra -n 2 --dist loadgroup --no-loadscope-reorder -m "not heavy"

test-fast: setup-test
	$(PY) -m pytest -q -m "not slow and not heavy"

# What make test leaves out: checks that cost minutes of compilation on their own (see pyproject's markers).
test-heavy: setup-test
	$(PY) -m pytest -q -ra -m heavy

lint: setup-test
	$(VENV)/bin/ruff check .

benchmark: setup
	$(PY) scripts/benchmark.py

examples: setup
	$(PY) -m palsy.scripts.build_examples

clean:
	rm -rf $(VENV) out .pytest_cache
