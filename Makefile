VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: bootstrap image container functions toolchains lint test test-unit bench run loadtest clean

bootstrap:
	@bash scripts/bootstrap.sh

image: bootstrap
	$(VENV)/unifaas image build

# The platform's container image, unifaas:<content key> and unifaas:latest (root; starts a
# Docker daemon unless one answers: `bash scripts/dockerd.sh stop` ends the one it started).
container: image
	bash scripts/dockerd.sh start
	$(VENV)/unifaas image container

functions: bootstrap
	$(VENV)/python functions/build.py

# What `unifaas new`'s templates build with (Rust, Go, Zig, AssemblyScript, C, Python, JS);
# idempotent. One alone: .venv/bin/unifaas toolchain install LANG.
toolchains: bootstrap
	$(VENV)/unifaas toolchain install --all

lint: bootstrap
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy

# Everything: lint, the guest image (built once, then cached), the templates' toolchains,
# unit and VM tests.
test: lint image toolchains
	$(VENV)/pytest $(PYTEST_ARGS)

# Tests that need no VM.
test-unit: bootstrap
	$(VENV)/pytest -m "not vm" $(PYTEST_ARGS)

bench: image
	$(VENV)/unifaas bench sandbox --json

# The platform on http://127.0.0.1:8080 with the example functions deployed.
run: image functions
	@bash scripts/run.sh

# One locust scenario headless against a running platform ($UNIFAAS_URL or 127.0.0.1:8080);
# the HTML report and CSVs go to loadtests/reports/<scenario>-<time>*. LOCUST_ARGS adds options.
SCENARIO ?= warm
LOADTEST_SCENARIOS := warm burst capacity misbehave
LOADTEST_URL ?= $(or $(UNIFAAS_URL),http://127.0.0.1:8080)
LOCUST_ARGS ?=
loadtest: bootstrap
	@case " $(LOADTEST_SCENARIOS) " in *" $(SCENARIO) "*) ;; \
	  *) echo "loadtest: SCENARIO must be one of: $(LOADTEST_SCENARIOS)" >&2; exit 2;; esac
	@mkdir -p loadtests/reports
	out=loadtests/reports/$(SCENARIO)-$$(date +%Y%m%d-%H%M%S); \
	$(VENV)/locust -f loadtests/$(SCENARIO).py --config loadtests/locust.conf \
	  --host $(LOADTEST_URL) --csv $$out --html $$out.html $(LOCUST_ARGS)

clean:
	rm -rf functions/build .pytest_cache .mypy_cache .ruff_cache
