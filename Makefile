# Two commands for a fresh machine: `make run` (install, then the main job) and `make test`.
VENV ?= .venv
DATA ?= ../shared/data
OUT ?= shards

.PHONY: run test install install-test bench

run: install
	$(VENV)/bin/speech2face prepare $(DATA)/s2f-pairs --out $(OUT)/pairs --workers 2

test: install-test
	$(VENV)/bin/python -m pytest -q

install:
	VENV=$(VENV) bash scripts/install.sh

install-test:
	VENV=$(VENV) bash scripts/install.sh test

bench: install
	$(VENV)/bin/python bench/prepare.py
