# The two commands of the README: `make run` and `make test`. Both install what is missing first.
.PHONY: run test bench compat lint setup-run setup-test setup-bench

run: setup-run
	scripts/run.sh

test: setup-test
	scripts/test.sh $(PYTEST_ARGS)

bench: setup-bench
	.venv/bin/python -m bench $(BENCH_ARGS)

# the real omegaml client (its own venv) against a throwaway omegaops
compat: setup-test
	scripts/compat.sh

lint: setup-test
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

setup-run:
	scripts/setup.sh run

setup-test:
	scripts/setup.sh test

setup-bench:
	scripts/setup.sh bench
