# Set-up is automatic: every target that needs Python creates .venv from the pinned
# requirements (and the lock in constraints.txt) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt constraints.txt | cksum | cut -d' ' -f1)
STACK  ?= production

.PHONY: venv plan plan-json test lint bench preview up lock clean

$(STAMP): requirements.txt constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

## The main job: offline plan of the production stack (mock runtime) with the policy report.
plan: $(STAMP)
	$(BIN)/python -m sarkops plan --stack $(STACK)

plan-json: $(STAMP)
	$(BIN)/python -m sarkops plan --stack $(STACK) --json

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

## Wall time of `python -m sarkops plan` as a whole process, several runs, min and median.
bench: $(STAMP)
	$(BIN)/python scripts/bench.py --runs 7

## Real use, with the Pulumi CLI and AWS credentials (not available offline).
preview:
	pulumi preview --stack $(STACK) --policy-pack policies --diff

up:
	pulumi up --stack $(STACK) --policy-pack policies

## Re-lock transitive dependencies after changing requirements.txt.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements.txt
	.lock-venv/bin/pip freeze --disable-pip-version-check > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

## Roll a failed release back: traffic to the previous release; RESTORE=1 also restores the
## release's pre-migration RDS snapshot after you confirm (RELEASE=<tag> if not appVersion).
.PHONY: rollback
rollback: $(STAMP)
	$(BIN)/python scripts/rollback.py --stack $(STACK) $(if $(RELEASE),--release $(RELEASE)) $(if $(RESTORE),--restore-database)
