# hcc — Hybrid Cloud Connector. `make demo` and `make test` do all the set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install system-deps demo test test-unit lint format bench lock clean vcsim dist appliance

install: $(STAMP)  ## virtualenv with locked dependencies; the CLI is .venv/bin/hcc

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

system-deps:  ## Debian packages (rabbitmq-server, Go + govmomi for vcsim, qemu-utils) when missing
	bash scripts/install-system-deps.sh

vcsim: system-deps  ## build sim/vcsim/bin/vcsim from Debian's govmomi source plus our overlay
	bash sim/vcsim/build.sh

HCC_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

dist: install  ## sdist and wheel of hcc into dist/ (the appliances install the wheel)
	rm -rf dist build/lib
	$(BIN)/python -c "from setuptools import build_meta as b; b.build_sdist('dist'); b.build_wheel('dist')"
	@ls -l dist

BASE  := build/appliance/base/debian-12-base.qcow2
ACCEL ?= $(if $(wildcard /dev/kvm),kvm,tcg)

$(BASE): scripts/appliance-base.sh
	bash scripts/appliance-base.sh $(dir $@)

appliance: dist  ## hcc-server and hcc-node OVAs into build/appliance/ (root, qemu, network; not in CI)
	bash scripts/install-system-deps.sh appliance
	$(MAKE) $(BASE)
	PACKER_CACHE_DIR=build/appliance/packer_cache packer build -force -parallel-builds=1 -var version=$(HCC_VERSION) -var python=$(BIN)/python \
		-var accelerator=$(ACCEL) packer/
	@ls -l build/appliance/*.ova

lock:  ## re-pin requirements.lock from the current virtualenv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^hcc' > requirements.lock

lint: install  ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-unit: install
	$(BIN)/pytest tests/unit -q

test: install system-deps vcsim lint  ## the whole suite, the same on a laptop and in CI
	bash scripts/run-tests.sh $(PYTEST_ARGS)

bench: install system-deps vcsim  ## benchmarks; each prints one JSON line
	@# as modules (python -m bench.NAME): run as a script, bench/copy.py would shadow stdlib copy
	@for b in bench/[!_]*.py; do echo "# $$b" >&2; $(BIN)/python -m bench.$$(basename $$b .py) || exit 1; done

demo: install system-deps vcsim  ## all-in-one installation + a copy from vSphere to vCD
	$(BIN)/hcc demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info sim/vcsim/bin sim/vcsim/build test-artifacts
