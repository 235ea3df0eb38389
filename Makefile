# ebill-ops: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install ui sandbox-up sandbox-down lock clean

# The virtualenv is rebuilt whenever the lock file or the project's metadata change.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-compile --no-deps -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

# Start the sandbox hospital, run the inspection against it, print where the evidence is, stop it.
demo: $(STAMP)
	$(BIN)/ebops demo

test: $(STAMP)
	$(BIN)/python -m pytest

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

clean:
	-$(BIN)/ebops sandbox down
	rm -rf $(VENV) .sandbox .ebops
