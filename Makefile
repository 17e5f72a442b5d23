# nasheur: `make install` then `make test` is the whole set-up on a fresh machine.
PYTHON ?= python3
# torch is installed on its own first, and only when it is missing: a CUDA build already in
# the environment (a cluster's) is kept. The default pin resolves to a local CPU wheel on the
# project's development machines and to PyPI's default build elsewhere; choose another with
# e.g. `make install TORCH="torch --index-url https://download.pytorch.org/whl/cu124"`.
TORCH ?= torch==2.13.0
PYTEST ?= $(PYTHON) -m pytest
# worker processes of the test suites (pytest-xdist; 1: none). The fast suite's time is mostly
# Python that composes configs, on one core per process. The slow suite's jobs train on the
# CPU: each worker's jobs get one intra-op thread (OMP_NUM_THREADS=1 unless set), so that the
# workers share the cores instead of waiting on one another (on 2 cores: 11 to 15 min, against
# 20 min in one process with 2 threads).
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))
XDIST = $(if $(filter-out 0 1,$(TEST_JOBS)),-n $(TEST_JOBS))
# this checkout, so that `make -f path/to/Makefile` from another folder finds its scripts (and
# its launch/site.env); runs/, tables/ and figures/ stay relative to the folder make runs in
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

.PHONY: install test test-slow test-all test-cuda lint format clean wheelhouse

install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install $(TORCH)
	$(PYTHON) -m pip install -e "$(ROOT)[dev]"

# the fast suite (about 6 minutes on 2 cores); slow end-to-end and SLURM tests are marked
test:
	cd "$(ROOT)" && $(PYTEST) -q $(XDIST) -m "not slow and not slurm"

test-slow:
	cd "$(ROOT)" && OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PYTEST) -q $(XDIST) -m "slow and not slurm"

test-all:
	cd "$(ROOT)" && $(PYTEST) -q

# on a GPU node: the tests that need CUDA (the device loader, CUDA-graph evaluation, a job)
test-cuda:
	@$(PYTHON) -c "import sys, torch; sys.exit(not torch.cuda.is_available())" || \
		{ echo "test-cuda: torch sees no CUDA device here" >&2; exit 1; }
	cd "$(ROOT)" && $(PYTEST) -q -m cuda

lint:
	cd "$(ROOT)" && $(PYTHON) -m ruff check src tests
	cd "$(ROOT)" && $(PYTHON) -m ruff format --check src tests

format:
	cd "$(ROOT)" && $(PYTHON) -m ruff check --fix src tests
	cd "$(ROOT)" && $(PYTHON) -m ruff format src tests

# the checkout's build outputs, wherever make runs (not that folder's own build/ or dist/)
clean:
	cd "$(ROOT)" && rm -rf build dist *.egg-info src/*.egg-info .pytest_cache .ruff_cache

# the fast suite against the oldest releases pyproject.toml allows (tests/oldest-requirements.txt)
# on Python 3.10, the oldest it allows, in a venv of its own made once in OLDEST_VENV (some
# 5 GB: PyPI's torch 2.6 is a CUDA build; it runs on the CPU)
PYTHON_OLDEST ?= python3.10
OLDEST_VENV ?= $(ROOT)/.venv-oldest
.PHONY: test-oldest
test-oldest:
	@test -x "$(OLDEST_VENV)/bin/python" || { \
	  py=$$(for p in "$(PYTHON_OLDEST)" $$HOME/.pyenv/versions/3.10*/bin/python3.10; do \
	    "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null \
	      && { echo "$$p"; break; }; done); \
	  test -n "$$py" || { echo "test-oldest: no Python 3.10 here (PYTHON_OLDEST=...)" >&2; exit 1; }; \
	  echo "$$py -m venv $(OLDEST_VENV)"; "$$py" -m venv "$(OLDEST_VENV)"; }
	"$(OLDEST_VENV)/bin/python" -m pip install -q -r "$(ROOT)/tests/oldest-requirements.txt"
	"$(OLDEST_VENV)/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$(ROOT)"
	cd "$(ROOT)" && "$(OLDEST_VENV)/bin/python" -m pytest -q $(XDIST) -m "not slow and not slurm"

# wheels of nasheur and its pure-Python needs, for a GPU node without a package index
# (launch/wheelhouse.sh says how to install them there)
wheelhouse:
	PYTHON=$(PYTHON) bash $(ROOT)/launch/wheelhouse.sh $(ROOT)/.whl

# SLURM (launch/README.md): a one-node cluster on this machine, the tests that need one, and
# sweeps through the launcher profile with this site's settings (launch/site.env).
.PHONY: slurm-up slurm-down test-slurm sweep sweep-debug

slurm-up:
	bash $(ROOT)/launch/slurm/start_cluster.sh

slurm-down:
	bash $(ROOT)/launch/slurm/stop_cluster.sh

# where there is no sbatch the tests are collected and skipped (exit 0), never "no tests" (5)
test-slurm:
	cd "$(ROOT)" && $(PYTEST) -q -m slurm

# make sweep ARGS="search_space=nb201 ground_truth.path=/data/nb201-cifar10-valid-200ep.csv seed=0,1,2"
sweep:
	exec env NASHEUR_RUNS="$(RUNS)" bash $(ROOT)/launch/with_site_env.sh $(PYTHON) -m nasheur -m hydra/launcher=slurm $(ARGS)

# the same sweep, each job cut to one epoch of 5 steps (conf/preset/debug.yaml; an experiment's
# own values win: epochs_ablation keeps its 100 to 1,800 epochs, of 5 steps each)
sweep-debug:
	exec env NASHEUR_RUNS="$(RUNS)" bash $(ROOT)/launch/with_site_env.sh $(PYTHON) -m nasheur -m hydra/launcher=slurm +preset=debug $(ARGS)

# The sweep targets `exec` their command, so that a SIGTERM to make reaches the sweep (make
# passes it to its child, which a plain /bin/sh would not hand on).
# The paper's tables. `make sweep-11 LAUNCHER=slurm` (with NASHEUR_DATA and NASHEUR_GT_<SPACE>
# set in launch/site.env) runs every experiment of Table 11 (one sweep each, under
# runs/sweeps/<experiment>; on a cluster all at once, launch/sweep_experiments.sh);
# `make table-11` merges whatever those sweeps have finished into tables/table-11.{md,csv,tex}.
# Relaunching a sweep skips completed jobs, resumes interrupted ones and reruns failed ones.
LAUNCHER ?= local
# the runs folder: $NASHEUR_RUNS from the environment or launch/site.env, else runs/; the
# sweep targets write under it and the table and figure targets read it, so that
# `make sweep-11 RUNS=/x` and `make table-11 RUNS=/x` meet
RUNS ?= $(or $(shell bash $(ROOT)/launch/with_site_env.sh printenv NASHEUR_RUNS 2>/dev/null),runs)
SWEEPS ?= $(RUNS)/sweeps
TABLES ?= tables
FIGURES ?= figures
EXPERIMENTS_4 := low_fidelity_budget
EXPERIMENTS_5 := dynamic_channels_ablation
EXPERIMENTS_6 := dynamic_channels_ablation
EXPERIMENTS_7 := dynamic_channels_ablation
EXPERIMENTS_9 := ops_on_ablation
EXPERIMENTS_10 := final_search
EXPERIMENTS_11 := bn_ablation lr_ablation epochs_ablation wd_ablation sampler_ablation
EXPERIMENTS_12 := layers_ablation portion_ablation batch_size_ablation channels_ablation
EXPERIMENTS_13 := ofa_ablation wsbn_ablation path_dropout_ablation global_dropout_ablation
EXPERIMENTS_14 := best
# after the tables it lists: := expands them here
EXPERIMENTS_3 := $(EXPERIMENTS_11) $(EXPERIMENTS_12) $(EXPERIMENTS_13)

.PHONY: bench host-instructions figures tables FORCE
# pattern rules cannot be phony: FORCE runs them even where a file is named sweep-11
FORCE:
sweep-%: FORCE
	@test -n "$(strip $(EXPERIMENTS_$*))" || { echo "no experiments for table $*$(if $(filter 8,$*), (Table 8 by the paper's captions is Table 9 here: make sweep-9))" >&2; exit 2; }
	exec env NASHEUR_RUNS="$(RUNS)" PYTHON="$(PYTHON)" bash $(ROOT)/launch/with_site_env.sh \
	  bash $(ROOT)/launch/sweep_experiments.sh \
	  "$(LAUNCHER)" "$(EXPERIMENTS_$*)" $(ARGS)

table-%: FORCE
	$(PYTHON) -m nasheur.results table "$(SWEEPS)" --table $* --out "$(TABLES)"

# every table that the sweeps under $(SWEEPS) can fill so far; one without runs yet (status 1
# and "nothing to merge") is skipped with its reason, any other failure (a traceback, which
# exits with status 1 too) fails the target once all were tried
TABLE_IDS := 3 4 5 6 7 9 10 11 12 13 14
tables:
	@made=0; bad=0; said=$$(mktemp) || exit 2; for t in $(TABLE_IDS); do \
	  $(PYTHON) -m nasheur.results table "$(SWEEPS)" --table $$t --out "$(TABLES)" 2>"$$said"; rc=$$?; \
	  cat "$$said" >&2; \
	  case $$rc in 0) made=$$((made + 1));; \
	    1) if grep -q "^nothing to merge" "$$said"; then echo "table $$t: skipped"; else bad=1; fi;; \
	    *) bad=$$rc;; esac; \
	done; rm -f "$$said"; echo "$$made of $(words $(TABLE_IDS)) tables written to $(TABLES)/"; exit $$bad

# training images/s, evaluation architectures/s, operators and host time per step (bench.json)
bench:
	$(PYTHON) -m nasheur.bench --out bench.json $(ARGS)

# the host's work per training step in instructions, under valgrind (host_instructions.json):
# exact on any CPU, to compare two versions of the step without a GPU
host-instructions:
	$(PYTHON) -m nasheur.host_instructions --out host_instructions.json $(ARGS)

# the paper's figures (Fig. 4, 6, 9, 12, 17 and a scatter) from all runs: figures/*.png, *.pdf
figures:
	$(PYTHON) -m nasheur.results figures "$(RUNS)" --out "$(FIGURES)"
