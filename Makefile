# SIPAS platform. `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lock run test test-unit lint typecheck docs docs-check bench bench-national soak clean help

help:
	@echo "make run    - start PostgreSQL, NATS and the five services (embedded), print the URLs"
	@echo "make test   - run the whole test suite over a throwaway embedded stack"
	@echo "make bench  - measure raw NATS/Postgres ceilings and the backbone; write docs/performance.md"
	@echo "             then a 10-million-row frame upload and draw; write docs/performance-sampling.md"
	@echo "             (SAMPLING_BENCH_ARGS=\"--rows 1000000\" for a smaller frame)"
	@echo "             then ballots intake over HTTP, bulk import and online-766; write docs/performance-ballots.md"
	@echo "make soak   - the fault-injection suite at full size: 10,000 ballots per seed over 3 seeds while services,"
	@echo "             NATS and PostgreSQL are killed; reconciles lost/doubled; writes docs/performance.md"
	@echo "             (SOAK_ARGS=\"--ballots 3000 --seeds 1\" for a shorter run)"
	@echo "make bench-national - one national round (34 provinces, 10M frame rows, 1M ballots) through the whole"
	@echo "             platform, stage by stage against raw ceilings; writes the National round section of"
	@echo "             docs/performance.md (hours at full scale: NATIONAL_ARGS=\"--frame-rows 1000000 --ballots 20000\")"
	@echo "make lint   - ruff + mypy;  make docs - regenerate docs/events.md and docs/asyncapi.yaml"
	@echo "make lock   - re-pin requirements/lock.txt from the virtualenv after a dependency change"

$(STAMP): requirements/dev.txt requirements/lock.txt libs/*/pyproject.toml cli/pyproject.toml services/*/pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt -c requirements/lock.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sipas up --demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e" libs/events/tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy libs/events/src libs/kit/src cli/src
	$(BIN)/mypy services/registry/src services/sampling/src services/ballots/src services/scoring/src services/publishing/src

docs: $(STAMP)
	$(BIN)/sipas docs generate

docs-check: $(STAMP)
	$(BIN)/sipas docs check

bench: $(STAMP)
	$(BIN)/python -m bench.backbone --out docs/performance.md
	$(BIN)/python -m bench.sampling --out docs/performance-sampling.md $(SAMPLING_BENCH_ARGS)
	$(BIN)/python -m bench.ballots --out docs/performance-ballots.md $(BALLOTS_BENCH_ARGS)
	$(BIN)/python -m bench.scoring --out docs/performance-scoring.md $(SCORING_BENCH_ARGS)

soak: $(STAMP)
	$(BIN)/python -m tests.reliability.chaos --out docs/performance.md $(SOAK_ARGS)

bench-national: $(STAMP)
	$(BIN)/python -m bench.national --out docs/performance.md $(NATIONAL_ARGS)

lock: $(STAMP)
	@echo '# Pinned versions of every third-party package the platform and its tests install (constraints:' > requirements/lock.txt
	@echo '# `make` installs requirements/dev.txt with -c this file). Regenerate with `make lock` after a dependency change.' >> requirements/lock.txt
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' >> requirements/lock.txt

clean:
	rm -rf $(VENV) .sipas
