# SeFa Studio: two commands for a fresh machine with Python 3.11 and pip.
#   make run    installs everything into .venv and starts the app on the default model
#   make test   installs everything (Chromium too, for the browser tests) and runs the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
STAMP := $(VENV)/.installed

.PHONY: install run test bench browser lint

install: $(STAMP)

$(STAMP): pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c requirements-lock.txt -e ".[test]"
	# The default model's weights; its declared dependencies (torchvision, wandb, matplotlib) are not wanted.
	$(BIN)/pip install -q --no-deps gan-face-generate==1.1.1
	touch $(STAMP)

run: install
	$(BIN)/streamlit run app.py --server.port $(PORT) --browser.gatherUsageStats false

# Debian's Chromium drives the browser tests; installed once, only where it is missing.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install browser lint
	$(BIN)/pytest

bench: install browser
	$(BIN)/python bench/run_all.py
