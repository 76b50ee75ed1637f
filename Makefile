# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.txt | cut -c1-12)

.PHONY: demo test test-integration install migrate run sandbox budget-sandbox tips-sandbox worker beat bench clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

# Migrate, load demo data, run an end-to-end demo on SQLite with Celery eager and the sandboxes.
demo: migrate
	$(PY) manage.py demo

# The whole suite. Integration tests skip (saying why) without PostgreSQL / a broker;
# browser tests skip without Debian's chromium.
test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The whole suite again on PostgreSQL, now including the integration tests (row-lock races, a real
# Celery worker killed mid-chunk). Needs DATABASE_URL=postgres://... and INTEGRATION_BROKER_URL (see .ci/run).
test-integration: install
	@case "$$DATABASE_URL" in postgres*) ;; *) echo "set DATABASE_URL=postgres://... (see .ci/run)"; exit 2;; esac
	$(PY) -m pytest -q $(PYTEST_ARGS)

run: migrate
	$(PY) manage.py runserver 127.0.0.1:8000

sandbox: install
	$(PY) manage.py run_sandbox --host 127.0.0.1 --port 8701

budget-sandbox: install
	$(PY) manage.py run_budget_sandbox --host 127.0.0.1 --port 8702 --storage var/budget-sandbox.sqlite3 --seed-demo

tips-sandbox: install
	$(PY) manage.py run_tips_sandbox --host 127.0.0.1 --port 8703 --storage var/tips-sandbox.sqlite3 --service-url http://127.0.0.1:8000/tips/soap/

worker: install
	$(VENV)/bin/celery -A config worker -Q treasury,payroll,fiscal,tax,social --concurrency 2 --loglevel INFO

beat: install
	$(VENV)/bin/celery -A config beat --loglevel INFO --schedule var/celerybeat-schedule

bench: install
	$(PY) bench/transfers.py
	$(PY) bench/receipts.py

clean:
	rm -rf var/db.sqlite3* var/media var/demo
