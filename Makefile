# Set-up is automatic: every target that needs Python creates .venv from the pinned
# requirements (and the lock in constraints.txt) on first use, and installs this project into
# it (editable), which puts the `sarkops` command in .venv/bin.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt constraints.txt pyproject.toml | cksum | cut -d' ' -f1)
STACK  ?= production
# Extra arguments for the command behind a target: make plan ARGS='-c sark-infra:appMinSize=3'
ARGS   ?=

# Never print "Entering directory" lines: `make plan-json > plan.json` must hold only the JSON,
# also when this make runs inside another make.
MAKEFLAGS += --no-print-directory

# Exit status of `make plan` / `make plan-json`: the plan's own 0 (no mandatory violation),
# 1 (a mandatory violation) or 2 (config, program or policy-pack error).
# GNU make exits 2 whenever a recipe fails, which would make a violation look like an error.
# Only in question mode (-q) does make exit 1, and a recipe line marked `+` still runs there and
# passes its exit status 1 through (GNU make src/job.c, reap_children(): "0 for success, 1 for
# updating target in question mode, 2 for anything else"; the mechanism exists for `$(MAKE) -q`
# in sub-makes). So when every goal is a plan target, this make runs in question mode and RUN
# marks the recipe lines of those targets and of the set-up with `+`. Not under `make -n`, which
# must only print the commands. Other goals (`make test`, `make lint plan`, ...) run normally:
# any failure exits 2.
PLAN_GOALS := plan plan-json
RUN := @
ifneq ($(MAKECMDGOALS),)
ifeq ($(filter-out $(PLAN_GOALS),$(MAKECMDGOALS)),)
ifeq ($(findstring n,$(filter-out -%,$(firstword $(MAKEFLAGS)))),)
MAKEFLAGS += -q
RUN := +@
endif
endif
endif

.PHONY: venv plan plan-json test lint bench preview up lock clean

# The project's own modules, byte-compiled by the set-up so the first plan does not compile them
# (pip compiles what it installs; an editable install is not copied). compileall writes the .pyc
# files even under PYTHONDONTWRITEBYTECODE. A syntax error is printed, and left to the plan to report.
COMPILED := sarkops components policies stack_config.py __main__.py

# pip's output goes to stderr: stdout of `make plan-json` is the JSON document and nothing else.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(RUN)test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	$(RUN)$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt >&2
	$(RUN)$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --editable . >&2
	$(RUN)$(BIN)/python -m compileall -q $(COMPILED) >&2 || true
	$(RUN)rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

## The main job: offline plan of the production stack (mock runtime) with the policy report.
## `python -m sarkops` from this directory runs this checkout's code, whichever checkout the venv's
## editable install points at.
plan: $(STAMP)
	$(RUN)$(BIN)/python -m sarkops plan --stack $(STACK) $(ARGS)

## The same plan as exactly one JSON document on stdout.
plan-json: $(STAMP)
	$(RUN)$(BIN)/python -m sarkops plan --stack $(STACK) --json $(ARGS)

## The test suite on every core (pytest-xdist; groups in tests/conftest.py). ARGS='-n 0' runs it serially.
test: $(STAMP)
	$(BIN)/pytest -n auto --maxprocesses 4 --dist loadgroup $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

## The plan as a whole process beside an import-only process of the same SDK modules, and the ratio
## (scripts/bench.py; README, Performance). ARGS='--runs 3' or ARGS='-- --stack staging'.
bench: $(STAMP)
	$(BIN)/python scripts/bench.py --runs 7 $(ARGS)

## Real use, with the Pulumi CLI and AWS credentials (not available offline).
PULUMI_MISSING = { printf '%s\n' \
	"make $@ needs the Pulumi CLI, and \`pulumi\` is not on PATH." \
	"  Install it: https://www.pulumi.com/docs/install/ (then \`pulumi login\` and AWS credentials)." \
	"  Without the CLI or an AWS account, \`make plan\` runs the offline plan of the stack with the policy pack." >&2; \
	exit 127; }

preview:
	@command -v pulumi >/dev/null 2>&1 || $(PULUMI_MISSING)
	pulumi preview --stack $(STACK) --policy-pack policies --diff $(ARGS)

up:
	@command -v pulumi >/dev/null 2>&1 || $(PULUMI_MISSING)
	pulumi up --stack $(STACK) --policy-pack policies $(ARGS)

## Re-lock transitive dependencies after changing requirements.txt.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements.txt
	.lock-venv/bin/pip freeze --disable-pip-version-check > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info

## Roll a failed release back: traffic to the previous release; RESTORE=1 also restores the
## release's pre-migration RDS snapshot after you confirm (RELEASE=<tag> if not appVersion).
.PHONY: rollback
rollback: $(STAMP)
	$(BIN)/python scripts/rollback.py --stack $(STACK) $(if $(RELEASE),--release $(RELEASE)) $(if $(RESTORE),--restore-database)
