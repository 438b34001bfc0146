# Two commands for a fresh machine: `make run` (install, then the main job) and `make test`.
# Installing happens once: a stamp in the environment is renewed only when pyproject.toml or
# the install script change (the package itself is installed editable). `run` needs the runtime
# only (ONNX Runtime, no torch); `test`, `prepare` and `bench` the test extras (torch included).
VENV ?= .venv
DATA ?= ../shared/data
OUT ?= faces
STAMP := $(VENV)/.installed
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test install install-test prepare bench

run: $(STAMP)
	$(VENV)/bin/speech2face reconstruct "$(DATA)/s2f-pairs/audio/00[2-3]*.opus" -o $(OUT)

test: $(STAMP_TEST)
	$(VENV)/bin/python -m pytest -q

install: $(STAMP)

install-test: $(STAMP_TEST)

$(STAMP): pyproject.toml scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh
	touch $@

$(STAMP_TEST): pyproject.toml scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh test
	touch $@ $(STAMP)

prepare: $(STAMP_TEST)
	$(VENV)/bin/speech2face prepare $(DATA)/s2f-pairs --out shards/pairs --workers 2

bench: $(STAMP_TEST)
	$(VENV)/bin/python bench/prepare.py
	$(VENV)/bin/python bench/decode.py
	$(VENV)/bin/python bench/reconstruct.py
	$(VENV)/bin/python bench/serve.py
