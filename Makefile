# wagate: `make run` sets up and serves; `make test` runs ruff, mypy and the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages: libmagic1 (neonize imports python-magic) to run; libzbar0 (the tests decode
# QR PNGs) to test; python3-venv where the interpreter lacks ensurepip.
RUN_LIBS  := libmagic.so.1
RUN_PKGS  := libmagic1
TEST_LIBS := libzbar.so.0
TEST_PKGS := libzbar0
# The browser tests drive Debian's chromium (not playwright's download); without it they skip.
CHROMIUM  := /usr/bin/chromium
# `make run` is the newcomer's demo: the simulated WhatsApp unless told otherwise.
export WAGATE_DRIVER ?= simulated

.PHONY: run test lint typecheck pytest venv clean bench fuzz sysdeps-run sysdeps-test _chromium

run: $(STAMP)
	$(BIN)/wagate serve

test: $(STAMP) sysdeps-test lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) sysdeps-test
	$(BIN)/pytest -q

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt | sysdeps-run
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || $(MAKE) --no-print-directory \
	  _apt PKGS=python3-venv WHY="$(PYTHON) cannot create a virtual environment"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

sysdeps-run:
	@$(MAKE) --no-print-directory _need LIBS="$(RUN_LIBS)" PKGS="$(RUN_PKGS)"

sysdeps-test:
	@$(MAKE) --no-print-directory _need LIBS="$(TEST_LIBS)" PKGS="$(TEST_PKGS)"
	@$(MAKE) --no-print-directory _chromium

# chromium for the browser tests: installed when we can (root + apt-get), else one message and
# the browser tests skip; a failed install does not stop the rest of the suite either.
_chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    $(MAKE) --no-print-directory _apt PKGS=chromium \
	      WHY="$(CHROMIUM) is missing (browser tests)" || \
	    echo "could not install chromium: the browser tests will skip" >&2; \
	  else \
	    echo "$(CHROMIUM) is missing: the browser tests will skip (to run them: sudo apt-get install --no-install-recommends chromium)" >&2; \
	  fi; \
	fi

# Install Debian packages for missing shared libraries when we can (root + apt-get), else say so.
_need:
	@missing=""; for lib in $(LIBS); do \
	  ldconfig -p 2>/dev/null | grep -q "$$lib" || missing="$$missing $$lib"; done; \
	if [ -n "$$missing" ]; then $(MAKE) --no-print-directory _apt PKGS="$(PKGS)" \
	  WHY="missing system libraries:$$missing"; fi

_apt:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "$(WHY): installing $(PKGS)"; \
	  (apt-get install -y -qq --no-install-recommends $(PKGS) >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null && \
	    apt-get install -y -qq --no-install-recommends $(PKGS) >/dev/null)) || \
	  { echo "could not install $(PKGS); install them and retry" >&2; exit 1; }; \
	else \
	  echo "$(WHY): install the Debian packages: sudo apt-get install $(PKGS)" >&2; exit 1; \
	fi

bench: $(STAMP)
	@command -v wrk >/dev/null || $(MAKE) --no-print-directory _apt PKGS=wrk WHY="wrk is missing"
	$(BIN)/python bench/send.py

# schemathesis against a live daemon (simulated driver): no 5xx, every answer as documented.
FUZZ_ARGS ?=
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
