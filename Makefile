VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: bootstrap image functions lint test test-unit bench run clean

bootstrap:
	@bash scripts/bootstrap.sh

image: bootstrap
	$(VENV)/unifaas image build

functions: bootstrap
	$(VENV)/python functions/build.py

lint: bootstrap
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy

# Everything: lint, the guest image (built once, then cached), unit and VM tests.
test: lint image
	$(VENV)/pytest $(PYTEST_ARGS)

# Tests that need no VM.
test-unit: bootstrap
	$(VENV)/pytest -m "not vm" $(PYTEST_ARGS)

bench: image
	$(VENV)/unifaas bench sandbox --json

# The platform on http://127.0.0.1:8080 with the example functions deployed.
run: image functions
	@bash scripts/run.sh

clean:
	rm -rf functions/build .pytest_cache .mypy_cache .ruff_cache
