# nasheur: `make install` then `make test` is the whole set-up on a fresh machine.
PYTHON ?= python3
# torch is installed on its own first, and only when it is missing: a CUDA build already in
# the environment (a cluster's) is kept. The default pin resolves to a local CPU wheel on the
# project's development machines and to PyPI's default build elsewhere; choose another with
# e.g. `make install TORCH="torch --index-url https://download.pytorch.org/whl/cu124"`.
TORCH ?= torch==2.13.0
PYTEST ?= $(PYTHON) -m pytest

.PHONY: install test test-slow test-all lint format clean

install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install $(TORCH)
	$(PYTHON) -m pip install -e ".[dev]"

# the fast suite (a few minutes on 2 cores); slow end-to-end and SLURM tests are marked
test:
	$(PYTEST) -q -m "not slow and not slurm"

test-slow:
	$(PYTEST) -q -m "slow and not slurm"

test-all:
	$(PYTEST) -q

lint:
	$(PYTHON) -m ruff check src tests
	$(PYTHON) -m ruff format --check src tests

format:
	$(PYTHON) -m ruff check --fix src tests
	$(PYTHON) -m ruff format src tests

clean:
	rm -rf build dist *.egg-info src/*.egg-info .pytest_cache .ruff_cache

# SLURM (launch/README.md): a one-node cluster on this machine, the tests that need one, and
# sweeps through the launcher profile with this site's settings (launch/site.env).
.PHONY: slurm-up slurm-down test-slurm sweep sweep-debug

slurm-up:
	bash launch/slurm/start_cluster.sh

slurm-down:
	bash launch/slurm/stop_cluster.sh

# where there is no sbatch the tests are collected and skipped (exit 0), never "no tests" (5)
test-slurm:
	$(PYTEST) -q -m slurm

# make sweep ARGS="ground_truth.path=/data/nb201-cifar10-valid-200ep.csv seed=0,1,2"
sweep:
	bash launch/with_site_env.sh $(PYTHON) -m nasheur -m hydra/launcher=slurm $(ARGS)

# the same sweep, each job cut to one short epoch (conf/preset/debug.yaml)
sweep-debug:
	bash launch/with_site_env.sh $(PYTHON) -m nasheur -m hydra/launcher=slurm +preset=debug $(ARGS)
