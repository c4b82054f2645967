# Two commands on a fresh machine: `make up` (finds or builds the Pulumi CLI, starts the simulator, deploys
# the example program) and `make test` (needs no CLI). `make e2e` runs the tier that drives the real CLI.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev
SIM_PORT ?= 8080
SIM_URL := http://127.0.0.1:$(SIM_PORT)
# A local file backend inside the project folder, and a documented passphrase for its secrets.
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi
export PULUMI_CONFIG_PASSPHRASE ?= zstack-iso-local
# The CLI never reaches for the network: no update check, no plugin download (every plugin it needs is
# next to it, or comes with the CLI the user installed).
export PULUMI_SKIP_UPDATE_CHECK ?= true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION ?= true
# The CLI that tools/pulumi/install found or built.
PULUMI = $(shell cat .tools/pulumi-path 2>/dev/null)

.PHONY: venv test e2e up down preview refresh stack pulumi-cli sim sim-start sim-stop bench lint clean distclean docs-examples

$(VENV)/.installed: pyproject.toml requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest -q -n 2 --dist loadfile --ignore=tests/e2e

# The real CLI against the simulator. Without a CLI and without Go to build one it says why in one line and
# stops there, except in CI (CI=true), where that is a failure.
e2e: venv
	@tools/pulumi/install >/dev/null || { rc=$$?; \
	  if [ $$rc -eq 3 ] && [ "$${CI:-}" != true ]; then echo "make e2e: skipped, no Pulumi CLI (see above)"; exit 0; fi; \
	  exit $$rc; }
	$(PY) -m pytest -q -n 2 --dist loadfile tests/e2e

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# The README quotes real CLI output captured by the e2e tier; this captures it again.
docs-examples: venv pulumi-cli
	ZSTACK_ISO_WRITE_EXAMPLES=1 $(PY) -m pytest -q tests/e2e/test_drift.py -k detached_by_hand_shows
	$(PY) tools/splice_example.py README.md docs/examples/drift-preview.txt

bench: venv
	$(PY) -m bench

# -- the example program against the bundled simulator --------------------------------------------------

sim: venv  ## run the simulator in the foreground
	$(PY) -m zstack_iso.simulator --port $(SIM_PORT) --state .sim/state.json

sim-start: venv  ## the simulator in the background: .sim/pid, .sim/log; started once
	@$(PY) -m zstack_iso.simulator --port $(SIM_PORT) --state .sim/state.json --background \
	  --pid-file .sim/pid --log-file .sim/log

sim-stop:
	@if [ -f .sim/pid ]; then kill "$$(cat .sim/pid)" 2>/dev/null || true; rm -f .sim/pid; echo "simulator stopped"; fi

# A `pulumi` on PATH that is new enough, or the pinned release built from Go modules into .tools/bin.
pulumi-cli: venv
	@tools/pulumi/install

stack: pulumi-cli sim-start
	@mkdir -p .pulumi
	$(PULUMI) stack select --create $(STACK)
	$(PULUMI) config set zstack:endpoint $(SIM_URL)
	$(PULUMI) config set zstack:accountName admin
	$(PULUMI) config set --secret zstack:accountPassword password

up: stack
	$(PULUMI) up --yes --stack $(STACK)

preview: stack
	$(PULUMI) preview --stack $(STACK)

refresh: stack
	$(PULUMI) refresh --yes --stack $(STACK)

down: stack
	$(PULUMI) destroy --yes --stack $(STACK)
	$(MAKE) sim-stop

clean: sim-stop
	rm -rf .sim .pulumi Pulumi.$(STACK).yaml

# `clean` keeps the CLI build (.tools); this removes it too.
distclean: clean
	rm -rf .tools
