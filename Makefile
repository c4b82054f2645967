# Two commands on a fresh machine: `make up` (needs the Pulumi CLI) and `make test` (does not).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev
SIM_PORT ?= 8080
SIM_URL := http://127.0.0.1:$(SIM_PORT)
# A local file backend inside the project folder, and a documented passphrase for its secrets.
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi
export PULUMI_CONFIG_PASSPHRASE ?= zstack-iso-local

.PHONY: venv test up down preview refresh stack pulumi-cli sim sim-start sim-stop bench lint clean

$(VENV)/.installed: pyproject.toml requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: venv
	$(PY) -m bench

# -- the example program against the bundled simulator --------------------------------------------------

sim: venv  ## run the simulator in the foreground
	$(PY) -m zstack_iso.simulator --port $(SIM_PORT) --state .sim/state.json

sim-start: venv
	@mkdir -p .sim
	@if [ -f .sim/pid ] && kill -0 "$$(cat .sim/pid)" 2>/dev/null; then \
	  echo "simulator already running on $(SIM_URL) (pid $$(cat .sim/pid))"; \
	else \
	  nohup $(PY) -m zstack_iso.simulator --port $(SIM_PORT) --state .sim/state.json >.sim/stdout 2>.sim/log & \
	  echo $$! > .sim/pid; \
	  for i in $$(seq 50); do grep -q listening .sim/stdout 2>/dev/null && break; sleep 0.1; done; \
	  grep -q listening .sim/stdout || { cat .sim/log; echo "the simulator did not start (see .sim/log)"; exit 1; }; \
	  head -n 1 .sim/stdout; \
	fi

sim-stop:
	@if [ -f .sim/pid ]; then kill "$$(cat .sim/pid)" 2>/dev/null || true; rm -f .sim/pid; echo "simulator stopped"; fi

pulumi-cli:
	@command -v pulumi >/dev/null || { \
	  echo "The Pulumi CLI is not installed. Install it (https://www.pulumi.com/docs/install/), then run 'make up' again."; \
	  echo "('make test' needs no Pulumi CLI.)"; exit 1; }

stack: pulumi-cli venv sim-start
	@mkdir -p .pulumi
	pulumi stack select --create $(STACK)
	pulumi config set zstack:endpoint $(SIM_URL)
	pulumi config set zstack:accountName admin
	pulumi config set --secret zstack:accountPassword password

up: stack
	pulumi up --yes --stack $(STACK)

preview: stack
	pulumi preview --stack $(STACK)

refresh: stack
	pulumi refresh --yes --stack $(STACK)

down: stack
	pulumi destroy --yes --stack $(STACK)
	$(MAKE) sim-stop

clean: sim-stop
	rm -rf .sim .pulumi Pulumi.$(STACK).yaml
