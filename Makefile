# The two commands of the README: `make run` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint pytest browser-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make run: start Redis (private), the API under gunicorn, the learner and demo traffic; prints the URL
run: $(STAMP)
	$(BIN)/artbandit run

## make test: lint, type-check, then every test (slow and browser ones included)
test: $(STAMP) browser-deps lint pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

# The dashboard's browser test drives Debian's Chromium; install it when missing and we may (root + apt).
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found and cannot install it: the browser test will fail"; fi; \
	fi

bench: $(STAMP)
	$(BIN)/python bench/policy_speed.py
	$(BIN)/python bench/simulator_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
