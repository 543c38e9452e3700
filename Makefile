# matridge developer commands. `make demo` and `make test` work on a fresh
# Debian machine: they install what is missing first.

VENV ?= .venv
# slidge 0.5 needs Python >= 3.13: `python3.13` (or newer) on PATH, else the
# newest one pyenv installed. Empty when there is none (see python-check).
ifndef PYTHON
PYTHON := $(shell \
  for c in python3.13 python3.14 python3.15 python3; do \
    exe=$$($$c -c 'import sys; sys.version_info >= (3, 13) and print(sys.executable)' 2>/dev/null) \
      && [ -n "$$exe" ] && { echo "$$exe"; exit 0; }; \
  done; \
  root=$$(pyenv root 2>/dev/null || echo "$$HOME/.pyenv"); \
  for d in $$(ls -d "$$root"/versions/3.* 2>/dev/null | sort -V -r); do \
    "$$d/bin/python3" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null \
      && { echo "$$d/bin/python3"; exit 0; }; \
  done)
endif
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEBIAN_PACKAGES := gcc make python3-venv python3-dev prosody prosody-modules libcurl4-openssl-dev libcjson-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all test test-asan tsan leakcheck demo docs build asan fuzz lint typecheck check system-deps python-check clean

all: build

# Debian packages: installed only when one is missing.
system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

python-check:
	@if [ -z "$(PYTHON)" ]; then \
	  echo "matridge needs Python 3.13 or newer: on Debian 13 run 'apt install python3.13-venv python3.13-dev', elsewhere install it with pyenv ('pyenv install 3.13')."; \
	  exit 1; fi

# The venv, with matridge installed editable (its C extension built in place).
# A venv left from an older Python is made anew.
$(VENV)/.installed: pyproject.toml setup.py | system-deps python-check
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 13))'; then \
	  echo "Replacing $(VENV): it was made with an older Python"; rm -rf $(VENV); fi
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[test,dev,docs]"
	@touch $@

# Rebuilds the extension after C changes (incremental).
build: $(VENV)/.installed
	$(PY) setup.py -q build_ext --inplace

# Lint, types, then the whole suite against real Synapse and Prosody
# started by the tests.
test: build lint typecheck docs
	$(PY) -m pytest -p no:cacheprovider

# A complete local deployment; prints how to connect an XMPP client.
demo: build
	$(PY) -m tests.harness.demo

# Benchmarks side by side with other Matrix decoders and clients (bench/);
# rewrites docs/benchmarks.md and docs/benchmarks.png. Takes a while and
# wants a quiet machine; BENCH_QUICK=1 runs small sizes while developing.
$(VENV)/.bench-installed: $(VENV)/.installed
	$(PIP) install -q -e ".[bench]"
	@touch $@

# Upstream matridge 0.5.0 (pure Python, matrix-nio), the gateway-level peer,
# in a venv of its own on the same slidge and Python. Its python-olm
# requirement is left out: libolm is deprecated, has no Python 3.13 wheel,
# and matridge 0.5.0 never imports it (its encryption goes through
# matrix-nio[e2e], i.e. vodozemac).
UPSTREAM_VENV := .venv-upstream
UPSTREAM_DEPS := "slidge==0.5.3" "matrix-nio[e2e]>=0.26,<0.27" \
	"beautifulsoup4>=4.12.2,<5" "async-lru>=2.0.3,<3" "slidge-style-parser>=0.1.6"
$(UPSTREAM_VENV)/.installed: | python-check
	@[ -x $(UPSTREAM_VENV)/bin/python ] || $(PYTHON) -m venv $(UPSTREAM_VENV)
	$(UPSTREAM_VENV)/bin/pip install -q --upgrade pip
	$(UPSTREAM_VENV)/bin/pip install -q $(UPSTREAM_DEPS)
	$(UPSTREAM_VENV)/bin/pip install -q --no-deps "matridge==0.5.0"
	@touch $@

.PHONY: bench
bench: build $(VENV)/.bench-installed $(UPSTREAM_VENV)/.installed
	$(PY) -m bench $(if $(BENCH_QUICK),--quick)

docs: $(VENV)/.installed
	$(VENV)/bin/sphinx-build -W -q -b html docs docs/_build/html
	@echo "docs in docs/_build/html/index.html"

# The extension with AddressSanitizer and UBSan. Python itself is not
# instrumented, so run it with the runtime preloaded (see docs/admin.rst):
#   LD_PRELOAD=$$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 .venv/bin/python ...
asan: $(VENV)/.installed
	MATRIDGE_SANITIZE=1 $(PY) setup.py -q build_ext --inplace --force

# The whole suite against the ASan/UBSan build (the gateway and Synapse
# subprocesses inherit the preloaded runtime), then the normal build again.
# UBSan findings abort; ASan reports any memory error and fails the run.
# pycryptodome (under matrix-nio, the tests' other device) dlopens with
# RTLD_DEEPBIND, which the ASan runtime refuses: it would abort at import.
ASAN_ENV = LD_PRELOAD=$$(gcc -print-file-name=libasan.so) PYCRYPTODOME_DISABLE_DEEPBIND=1 \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
test-asan: asan
	$(ASAN_ENV) $(PY) -m pytest -p no:cacheprovider -x; rc=$$?; \
	$(PY) setup.py -q build_ext --inplace --force; exit $$rc

# The engine under ThreadSanitizer: many clients starting and stopping sync
# loops, cancelling requests and paging history at once (fuzz/tsan_stress.py).
# Fails on any TSan report; then the normal build again.
TSAN_ROUNDS ?= 20
tsan: $(VENV)/.installed
	@mkdir -p build
	MATRIDGE_SANITIZE=thread $(PY) setup.py -q build_ext --inplace --force
	TSAN_OPTIONS="halt_on_error=0 report_signal_unsafe=0" \
	LD_PRELOAD=$$(gcc -print-file-name=libtsan.so) $(PY) -m fuzz.tsan_stress $(TSAN_ROUNDS) \
	  > build/tsan.log 2>&1; rc=$$?; \
	$(PY) setup.py -q build_ext --inplace --force; \
	grep -E "^(round|ok)" build/tsan.log | tail -3; \
	if grep -q "WARNING: ThreadSanitizer" build/tsan.log; then \
	  grep -A30 "WARNING: ThreadSanitizer" build/tsan.log | head -60; exit 1; fi; exit $$rc

# Memory stays flat: the benchmark's 44 MB /sync response decoded and routed
# LEAK_DECODES times, and LEAK_CLIENT_ROUNDS rounds of 100 clients started,
# synced and stopped (fuzz/leakcheck.py).
LEAK_DECODES ?= 10000
LEAK_CLIENT_ROUNDS ?= 100
leakcheck: build
	$(PY) -m fuzz.leakcheck --decodes $(LEAK_DECODES) --client-rounds $(LEAK_CLIENT_ROUNDS)

# libFuzzer harnesses (clang, ASan + UBSan) over the decoder and history
# pager, each for FUZZ_SECONDS; see docs/reliability.rst.
FUZZ_SECONDS ?= 30
fuzz:
	@$(MAKE) -s system-deps DEBIAN_PACKAGES="clang libclang-rt-14-dev libcjson-dev"
	$(MAKE) -C fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check matridge tests fuzz bench
	$(VENV)/bin/ruff format --check matridge tests fuzz bench

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

check: lint typecheck test

clean:
	rm -rf build *.egg-info matridge/*.so docs/_build docs/api .demo fuzz/build
