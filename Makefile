# wagate: `make run` sets up and serves; `make test` runs ruff, mypy and the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# System libraries: libmagic1 (neonize imports python-magic), libzbar0 (tests decode QR PNGs).
SYSTEM_LIBS := libmagic.so.1 libzbar.so.0
SYSTEM_PKGS := libmagic1 libzbar0

.PHONY: run test lint typecheck pytest sysdeps venv clean bench

run: $(STAMP)
	$(BIN)/wagate serve

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt | sysdeps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# Install what the suite needs from Debian's archive when we can (root + apt-get), else say so.
sysdeps:
	@missing=""; for lib in $(SYSTEM_LIBS); do \
	  ldconfig -p 2>/dev/null | grep -q "$$lib" || missing="$$missing $$lib"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages: $(SYSTEM_PKGS)"; \
	    (apt-get install -y -qq --no-install-recommends $(SYSTEM_PKGS) >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $(SYSTEM_PKGS) >/dev/null)) \
	     || { echo "could not install $(SYSTEM_PKGS); install them and retry" >&2; exit 1; }; \
	  else \
	    echo "missing system libraries:$$missing -- install the Debian packages: $(SYSTEM_PKGS) (sudo apt-get install $(SYSTEM_PKGS))" >&2; exit 1; \
	  fi; \
	fi

bench: $(STAMP)
	@echo "benchmarks arrive with durable delivery (bench/send.py)"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
