# Aurora data toolkit. `make demo` runs everything on bundled data; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Curation recipes: the demo ones by default; `make recipe-fi RECIPES=recipes` runs full scale.
RECIPES ?= recipes/demo
EXECUTOR ?= ray
WORKERS ?= 2
LANGS := en fi hi ja vi code

.PHONY: setup demo demo-data test assets audit clean $(addprefix recipe-,$(LANGS))

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --disable-pip-version-check -e '.[dev]'
	touch $@

assets: $(STAMP)
	$(BIN)/aurora assets build --output assets

demo-data: $(STAMP)
	$(BIN)/aurora demo-data --output data/demo

$(addprefix recipe-,$(LANGS)): recipe-%: $(STAMP) assets
	$(BIN)/aurora curate $(RECIPES)/$*.yaml --executor $(EXECUTOR) --workers $(WORKERS)

demo: $(STAMP) assets demo-data
	rm -rf out/demo  # a demo starts from scratch; `aurora curate` alone resumes
	$(MAKE) --no-print-directory $(addprefix recipe-,$(LANGS)) RECIPES=recipes/demo
	$(MAKE) --no-print-directory audit
	@echo "Demo finished. Shards: out/demo/<lang>/shards/; manifests:"
	@ls -1 out/demo/*/manifest.json

audit: $(STAMP)
	$(BIN)/aurora manifest audit out/demo/*/manifest.json

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf out data assets
