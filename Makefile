# The two commands of the README, and the helpers they rely on. Everything installs into .venv
# from pyproject.toml, with constraints.txt holding the exact versions the suite was tested with.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test typecheck unit integration schemas bench bench-quick bench-crowd bench-backfill bench-scaleout clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

## README command 1: embedded broker + worker + simulated traffic, then a summary.
demo: $(STAMP)
	$(VENV)/bin/bridge demo

## README command 2: the whole suite, on SQLite and on PostgreSQL (started by .ci/postgres.sh),
## with the console's browser tests on Debian's chromium (installed by .ci/chromium.sh).
test: $(STAMP) typecheck
	@url="$${TEST_POSTGRES_URL:-$$(bash .ci/postgres.sh || true)}"; \
	bash .ci/chromium.sh >/dev/null || true; \
	TEST_POSTGRES_URL="$$url" $(PY) -m pytest

## The type checker, strict on the rules, the adapters and the console (configured in pyproject.toml).
typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP)
	$(PY) -m pytest tests/integration

## Regenerate what derives from the catalogue, the models and the settings (schemas, AsyncAPI,
## Strimzi topics, the operations reference) after changing one of them.
schemas: $(STAMP)
	$(PY) -m topics.schemas
	$(PY) -m topics.asyncapi
	$(PY) -m topics.strimzi
	$(PY) -m tests.ops.test_operations_doc

## Throughput and latency of the bridge against pass-through baselines (see bench/RESULTS.md).
bench: $(STAMP)
	$(PY) -m bench.run

bench-quick: $(STAMP)
	$(PY) -m bench.run --quick

## Cost of one event when many accounts share one name+mobile (issue 11, identity rule 8).
bench-crowd: $(STAMP)
	$(PY) -m bench.crowd

## Backfill rate against the streamed rate of the same machine (issue 15).
bench-backfill: $(STAMP)
	$(PY) -m bench.backfill

## Several workers of one group on one PostgreSQL: throughput, conflicts and database work per event (issue 14).
bench-scaleout: $(STAMP)
	$(PY) -m bench.scaleout

clean:
	rm -rf $(VENV) var .pytest_cache
