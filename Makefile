# sendgate — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export SENDGATE_VAR ?= /tmp/sendgate
export KAFKA_PORT ?= 19092
export KAFKA_CONTROLLER_PORT ?= 19093
export REDIS_PORT ?= 16379
export SENDGATE_KAFKA_BOOTSTRAP ?= 127.0.0.1:$(KAFKA_PORT)
export SENDGATE_REDIS_URL ?= redis://127.0.0.1:$(REDIS_PORT)/0

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11+"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

.PHONY: setup
setup: $(VENV)/.installed ## create .venv and install sendgate with its dev tools (idempotent)

.PHONY: lint
lint: setup ## ruff + strict mypy on streams/
	$(VENV)/bin/ruff check streams tests bench
	$(VENV)/bin/mypy streams

.PHONY: kafka-up
kafka-up: ## start the local KRaft Kafka 4.0.2 broker (idempotent)
	bash infra/kafka/kafka.sh up

.PHONY: kafka-down
kafka-down: ## stop the local Kafka broker
	bash infra/kafka/kafka.sh down

.PHONY: redis-up
redis-up: ## use the configured Redis, or start a private redis-server (idempotent)
	bash infra/redis/redis.sh up

.PHONY: redis-down
redis-down: ## stop the private redis-server (if we started it)
	bash infra/redis/redis.sh down

.PHONY: kafka-up-secure
kafka-up-secure: setup ## secure Kafka (SASL_SSL, SCRAM users, local CA, ACLs per role) on 29092
	KAFKA_PROFILE=secure SENDGATE_PYTHON=$(PY) bash infra/kafka/kafka.sh up

.PHONY: kafka-down-secure
kafka-down-secure: ## stop the secure Kafka broker
	KAFKA_PROFILE=secure bash infra/kafka/kafka.sh down

.PHONY: redis-up-secure
redis-up-secure: ## private Redis with ACL users (admin, worker, status) on 26379
	REDIS_PROFILE=secure bash infra/redis/redis.sh up

.PHONY: redis-down-secure
redis-down-secure: ## stop the private secure Redis
	REDIS_PROFILE=secure bash infra/redis/redis.sh down

.PHONY: acl-plan
acl-plan: setup ## print the Kafka ACLs of each role as kafka-acls.sh commands
	$(VENV)/bin/sendgate acl plan

.PHONY: services
services: kafka-up redis-up

.PHONY: topics
topics: setup services ## create the catalogue's topics (idempotent)
	$(VENV)/bin/sendgate topics create

.PHONY: test-unit
test-unit: setup ## unit, property and scenario tests (no services)
	$(PY) -m pytest -q tests/unit tests/scenarios

.PHONY: browser
browser: ## headless Chromium for the HTML report test (Debian package chromium)
	@command -v chromium >/dev/null 2>&1 || bash infra/apt.sh install chromium

.PHONY: test
test: setup lint services browser ## everything: lint, unit, scenarios, integration and chaos on real Kafka + Redis
	$(PY) -m pytest -q -p no:cacheprovider tests

.PHONY: run
run: setup services topics ## Kafka + Redis + topics + worker + demo feed with a live tally (Ctrl-C stops)
	SENDGATE_DEV_MODE=$${SENDGATE_DEV_MODE:-1} $(VENV)/bin/sendgate demo

.PHONY: bench-core
bench-core: setup ## pure-core benchmark: folds/s and decisions/s on one core
	$(PY) bench/bench_core.py --tuned-gc  # the worker's GC thresholds (SENDGATE_GC_THRESHOLD default)

QUIX_VENV := .venv-quix
# phase q's own virtualenv: quixstreams pins an older confluent-kafka than sendgate's
$(QUIX_VENV)/.installed: bench/requirements-quix.txt
	test -x $(QUIX_VENV)/bin/python || $(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/python -m pip install -q --upgrade pip
	$(QUIX_VENV)/bin/python -m pip install -q -r bench/requirements-quix.txt
	touch $@

# the faust adapter (phases f, c1faust) once faust is an extra; pip only warns while it is not
$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev,faust]'
	touch $@

BENCH_ARGS ?=
.PHONY: bench
bench: setup services topics $(VENV)/.bench-installed $(QUIX_VENV)/.installed ## end-to-end benchmark: broker, Python, faust, Quix and confluent-kafka ceilings, sendgate (BENCH_ARGS="--phases q,k --events 200000")
	$(PY) bench/bench_e2e.py $(BENCH_ARGS)

.PHONY: bench-audit
bench-audit: setup services topics ## replay speed of sendgate audit
	$(PY) bench/bench_audit.py --kafka

.PHONY: bench-status
bench-status: setup services ## status lookup latency from Redis
	$(PY) bench/bench_status.py

.PHONY: soak
soak: setup services ## the chaos tests with 10x the traffic (not part of make test)
	SENDGATE_SOAK=1 $(PY) -m pytest -q tests/chaos

.PHONY: down
down: kafka-down redis-down kafka-down-secure redis-down-secure ## stop local services

.PHONY: clean
clean: ## remove local state (venv kept)
	rm -rf $(SENDGATE_VAR)
