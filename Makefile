# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INSTANCES ?= 1

NODE_CLIENTS := tests/clients/node_modules/.installed

.PHONY: demo test test-unit emulator infra infra-stop lint bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

# jsforce and cometd, for the tests that run real JavaScript clients.
$(NODE_CLIENTS): tests/clients/package.json tests/clients/package-lock.json
	npm ci --prefix tests/clients --no-audit --no-fund
	touch $(NODE_CLIENTS)

infra:
	scripts/infra.sh start

infra-stop:
	scripts/infra.sh stop

## Everything running, the bundled export played into both sides; ends with SUMMARY.
demo: $(STAMP) infra
	$(BIN)/sfsync demo --instances $(INSTANCES) $(DEMO_ARGS)

## The whole test suite on real RabbitMQ, Redis and the emulator.
test: $(STAMP) $(NODE_CLIENTS) infra
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

## The sync's benchmark, batching off and on (bench/run.py --help; about 15 min).
bench: $(STAMP) infra
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## The local Salesforce in the foreground.
emulator: $(STAMP)
	$(BIN)/sfsync-emulator --data-dir var/emulator

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src

clean:
	rm -rf var
