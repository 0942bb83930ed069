# make demo — set up .venv if needed, then run the main job on the embedded store.
# make test — the same set-up, then the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPILED := $(VENV)/.compiled
BYTECODE := $(VENV)/.bytecode
SOURCES := $(shell find src -name '*.py')
# the modules mypyc compiles (src/livecoupon/compiled.py); LIVECOUPON_PURE=1 builds pure Python
COMPILED_SOURCES := $(shell sed -n 's/^    "livecoupon\.\(.*\)",$$/\1/p' src/livecoupon/compiled.py | tr . / | sed 's|.*|src/livecoupon/&.py|') src/livecoupon/engine/scan.pyx

.PHONY: demo test install compile lint bench cluster clean

$(STAMP): pyproject.toml constraints.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP) $(COMPILED)  # pip -e built the compiled modules into src/

# An edited compiled module runs from its source until rebuilt (livecoupon/compiled.py): rebuild in place.
$(COMPILED): $(STAMP) $(COMPILED_SOURCES)
	$(BIN)/python setup.py --quiet build_ext --inplace
	find src -maxdepth 1 -name 'livecoupon__mypyc*' -exec touch {} +  # current even when the C did not change
	touch $(COMPILED)

# Bytecode of every module, which Python writes at a module's first import unless PYTHONDONTWRITEBYTECODE is set
# (as in this machine's sessions: then every command compiled ~20 modules from source, ~135 M instructions, 10% of
# replay's start-up). An installed wheel has it from pip. An edited module runs compiled from its source until rebuilt.
$(BYTECODE): $(STAMP) $(SOURCES)
	$(BIN)/python -m compileall -q src
	touch $(BYTECODE)

install: $(STAMP) $(COMPILED) $(BYTECODE)

compile: $(COMPILED)

demo: $(STAMP) $(COMPILED) $(BYTECODE)
	$(BIN)/livecoupon demo --out demo-out

# make cluster — two gateways and two workers on the machine's PostgreSQL and NATS (docs/scaling.md).
cluster: $(STAMP)
	$(BIN)/livecoupon cluster --config examples/campaign.yaml

test: $(STAMP) $(COMPILED) $(BYTECODE)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(STAMP) $(COMPILED) $(BYTECODE)
	$(BIN)/python bench/issue.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache demo-out build
	find src -name '*.so' -delete
	rm -f src/livecoupon/engine/scan.c
