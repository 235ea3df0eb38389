# ebill-ops: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fleet install ui sandbox-up sandbox-down fleet-up fleet-down lock clean

# The virtualenv is rebuilt whenever the lock file or the project's metadata change.
# uv installs the ~140 pinned wheels in parallel (pip took over 20 minutes here); it is itself
# pinned, and pip check then proves the installed tree consistent.
UV_VERSION := 0.13.9
export UV_NATIVE_TLS := 1
# Some machines set PYTHONDONTWRITEBYTECODE=1: then every process (pytest, the Prefect API it
# starts, each sandbox server) compiles prefect, pydantic, GX... from source again, ~30 s of CPU
# each here. Let Python keep the bytecode it compiles.
unexport PYTHONDONTWRITEBYTECODE
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install -qq --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

# Start the sandbox hospital, run the inspection against it, print where the evidence is, stop it.
demo: $(STAMP)
	$(BIN)/ebops demo

test: $(STAMP)
	$(BIN)/python -m pytest

# A local Prefect server (127.0.0.1:4200, or a free port) serving every deployment of the demo site;
# Ctrl-C or SIGTERM stops it. The demo site's file reads the sandbox's ports, so the sandbox is started
# first (harmless when it runs; `make sandbox-down` stops it), and its secrets are put into the
# environment the site file refers to (every flow run the server starts reads them from there; without
# them each scheduled run failed on the first secret it resolved). exec: the signals reach `ebops ui`.
ui: $(STAMP)
	$(BIN)/ebops sandbox up
	eval "$$($(BIN)/ebops sandbox env)" && exec $(BIN)/ebops ui demo

# The two-worker test alone (a Prefect server on PostgreSQL, two workers; minutes): also part of `make test`.
test-fleet: $(STAMP)
	$(BIN)/python -m pytest -m fleet tests/integration/test_fleet_workers.py

# Many hospitals on Prefect's own distribution, for the sandbox: a Prefect server on the sandbox's
# PostgreSQL, the process work pool, one worker per site file, every site's deployments.
fleet-up: $(STAMP)
	$(BIN)/ebops sandbox up
	$(BIN)/ebops fleet up
	$(BIN)/ebops fleet deploy

fleet-down: $(STAMP)
	$(BIN)/ebops fleet down

sandbox-up: $(STAMP)
	$(BIN)/ebops sandbox up

sandbox-down: $(STAMP)
	$(BIN)/ebops sandbox down

# Re-resolve the dependency tree (needs the package index); commit the new lock file.
lock:
	rm -rf /tmp/ebops-lock && $(PYTHON) -m venv /tmp/ebops-lock
	/tmp/ebops-lock/bin/python -m pip install -q --upgrade pip
	/tmp/ebops-lock/bin/python -m pip install -q -e '.[test]'
	/tmp/ebops-lock/bin/python -m pip check
	/tmp/ebops-lock/bin/python -m pip freeze --exclude-editable | grep -v '^-e ' > requirements.lock
	@echo "requirements.lock rewritten; check it with a fresh 'make install'"

clean:
	-$(BIN)/ebops sandbox down
	-$(BIN)/python -c "from sandbox import postgres; postgres.discard('.sandbox')"  # as root: db1's tree in /tmp
	rm -rf $(VENV) .sandbox .ebops
