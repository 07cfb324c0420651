# SeFa Studio: two commands for a fresh machine with Python 3.11 and pip.
#   make run    installs everything into .venv and starts the app on the default model
#   make test   installs everything (Chromium and nginx too, for the browser and serve tests) and runs the suite
#   make serve  REPLICAS Streamlit replicas behind nginx on PORT (see README, "Many users")
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
REPLICAS ?= 2
STAMP := $(VENV)/.installed

.PHONY: install run test bench browser nginx serve lint

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

# nginx balances the replicas of `make serve` (and tests/test_serve.py); installed once, only where missing.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { apt-get update -qq && apt-get install -y -qq nginx; }

serve: install nginx
	$(BIN)/sefa serve --replicas $(REPLICAS) --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install browser nginx lint
	$(BIN)/pytest

bench: install browser
	$(BIN)/python bench/run_all.py
