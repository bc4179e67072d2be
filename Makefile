# The commands a newcomer needs. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# uv comes from PyPI: a fresh machine with only Python and pip gets it on first use.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST := $(UV) run --frozen pytest
SERVICES := $(notdir $(wildcard services/*))

.PHONY: help uv install test test-comm lint fmt typecheck run up down bench bench-http bench-events bench-memory bench-instructions migration asyncapi k8s-secrets soak

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

uv:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

install: uv ## Install every package of the workspace from the lockfile into .venv
# Compiled ahead: with PYTHONDONTWRITEBYTECODE set (this machine sets it) every process would compile its imports
# again at each start (importing the gateway and blog apps here: 2.5 s of CPU, 1.0 s compiled).
	$(UV) sync --frozen --all-packages --compile-bytecode

# The quick soak runs after the suites, in a pytest run of its own: its eight replicas need about 60 PostgreSQL
# connections, which the suites' session fixtures (each suite's apps, the end-to-end stack) hold until their run ends.
test: install ## Run every suite against the real PostgreSQL and RabbitMQ, then the quick soak
	$(PYTEST) $(wildcard libs services tests) --ignore=tests/test_soak.py
	$(PYTEST) tests/test_soak.py

test-comm: install ## Run the communication library's suite
	$(PYTEST) libs/comm

test-%: install ## Run one service's suite (test-auth, test-blog, test-user, test-comment, test-gateway)
	$(PYTEST) services/$*

lint: install ## ruff and mypy
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy -p comm $(foreach s,$(SERVICES),-p $(s))

fmt: install ## Format and autofix
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

run: install ## Start the five apps as local processes (needs PostgreSQL and RabbitMQ); Ctrl-C stops them
	$(UV) run --frozen python -m comm.preflight $(SERVICES)
	$(UV) run --frozen honcho start -f Procfile

up: ## docker compose up --build
	docker compose up --build

down: ## docker compose down
	docker compose down

bench: install ## CPU per request of the hot reads, service by service and through the gateway, in units of a bare endpoint
	$(UV) run --frozen python bench/cost.py

bench-http: install ## Benchmark the ServiceClient proxy against the backend direct
	$(UV) run --frozen python bench/http_proxy.py

bench-events: install ## Benchmark outbox-to-handler latency and throughput against raw aio-pika
	$(UV) run --frozen python bench/events.py

bench-instructions: install ## Instructions per request of blog's two hot reads and the gateway's article read, by callgrind (needs valgrind)
	$(UV) run --frozen python bench/instructions.py

k8s-secrets: install ## Write infra/k8s/base/secrets/ (git-ignored): random passwords and auth's key, for kustomize
	$(UV) run --frozen python infra/k8s/make_secrets.py

bench-memory: install ## Resident memory of each app under a workload, for the k8s requests and limits
	$(UV) run --frozen python bench/memory.py

asyncapi: install ## Write docs/asyncapi.yaml from the event registry (comm.events.models)
	$(UV) run --frozen python -m comm.events.asyncapi > docs/asyncapi.yaml

migration: install ## New Alembic revision from the models: make migration SERVICE=auth MSG="add roles"
	cd services/$(SERVICE) && $(UV) run --frozen python -m comm.db $(SERVICE) "$(MSG)"

soak: install ## Faults injected under a mixed workload, two replicas per service, then a checker (ARGS="--quick", "--duration 300")
	$(UV) run --frozen python tests/soak.py $(ARGS)
