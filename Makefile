# The verbs a user needs. Each recipe is a one-liner; the logic lives in devstack/ and the modules.
#   make run     the whole stack on loopback (simulator unless RITHMIC_USER is set); Ctrl-C stops it
#   make test    the whole suite: unit, integration, e2e, infra, faults, bench markers
#                (PYTEST_ARGS='-m unit' or a path narrows it while you work; CI never sets it)
#   make archive the archive job now (closed days to Parquet, then retention), on make run's data
#   make bench   the benchmarks (QUICK=1 for a short run)
#   make synth   offline CDK synth of the AWS stacks, with cdk-nag
#   make lint    ruff
#   make clean   caches and build output; `make clean-local` also deletes .local (recorded data!)

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# jsii prints a Node-version banner on every start; it is noise, not a problem.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: venv run archive test bench synth lint clean clean-local

$(STAMP): pyproject.toml
	bash devstack/venv.sh

venv: $(STAMP)

run: $(STAMP)
	$(PY) -m devstack.run

archive: $(STAMP)
	$(PY) -m devstack.archive $(ARGS)

test: $(STAMP)
	$(PY) -m devstack.ensure && $(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench

synth: $(STAMP)
	$(PY) -m infra.cdk.synth

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf .pytest_cache .ruff_cache infra/cdk/cdk.out

clean-local: $(STAMP)
	$(PY) -m devstack.clean
