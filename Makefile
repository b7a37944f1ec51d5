# The two commands of the README: `make run` and `make test`. Both install what is missing first.
.PHONY: run test bench lint setup-run setup-test

run: setup-run
	scripts/run.sh

test: setup-test
	scripts/test.sh $(PYTEST_ARGS)

bench: setup-test
	.venv/bin/python -m bench

lint: setup-test
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

setup-run:
	scripts/setup.sh run

setup-test:
	scripts/setup.sh test
