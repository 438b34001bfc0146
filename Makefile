# Two commands for a fresh machine: `make run` (install, then the main job) and `make test`.
VENV ?= .venv
DATA ?= ../shared/data
OUT ?= faces

.PHONY: run test install install-test prepare bench

run: install
	$(VENV)/bin/speech2face reconstruct "$(DATA)/s2f-pairs/audio/00[2-3]*.opus" -o $(OUT)

test: install-test
	$(VENV)/bin/python -m pytest -q

install:
	VENV=$(VENV) bash scripts/install.sh

install-test:
	VENV=$(VENV) bash scripts/install.sh test

prepare: install
	$(VENV)/bin/speech2face prepare $(DATA)/s2f-pairs --out shards/pairs --workers 2

bench: install
	$(VENV)/bin/python bench/prepare.py
	$(VENV)/bin/python bench/decode.py
	$(VENV)/bin/python bench/reconstruct.py
