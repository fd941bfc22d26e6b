# sqlagent: every target that needs the environment depends on `setup`, so a fresh clone needs no extra step.
SHELL := /bin/bash
export UV_COMPILE_BYTECODE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True
export MLFLOW_DISABLE_TELEMETRY := true
# uv from PATH, else bootstrapped once into .uv/ through pip (works on PEP 668 system Pythons too).
UV ?= $(shell command -v uv 2>/dev/null || echo .uv/bin/uv)
PY := .venv/bin/python
SQLAGENT := .venv/bin/sqlagent
QUESTION ?= Who hit the most home runs in 1927, and how many?
STAMP := .venv/.sqlagent-setup

.PHONY: setup demo test test-unit test-integration lint bench bench-load ui clean

setup: $(STAMP) data/lahman.duckdb
	@$(PY) -c "from agent.config import load_settings; from agent.lm.models import assemble, get_spec; \
	from agent.config import resolve_path; s = load_settings(); \
	[assemble(get_spec(n), resolve_path(s.embedded.cache_dir)) for n in ('qwen2.5-coder-1.5b', 'qwen2.5-coder-0.5b')]"

$(STAMP): pyproject.toml uv.lock
	@[ -x "$(UV)" ] || command -v "$(UV)" >/dev/null 2>&1 || { python3 -m venv .uv && .uv/bin/pip install --quiet uv; }
	$(UV) sync --frozen --all-extras
	@touch $(STAMP)

data/lahman.duckdb: $(STAMP) data/build_lahman.py data/lahman_comments.yaml data/team_nicknames.yaml
	$(PY) -m data.build_lahman

# ENGINE=postgres: the same question on the demo loaded into a throwaway local PostgreSQL cluster
# (started, loaded once, stopped again: data/pg_local.py); ENGINE=spark: on the demo loaded into a
# Spark warehouse (data/spark-warehouse, data/load_spark.py), Spark in local mode (needs Java 17+);
# ENGINE=duckdb (default): data/lahman.duckdb.
ENGINE ?= duckdb
SPARK_URL := spark-local:///data/spark-warehouse;database=lahman
SPARK_WAREHOUSE := data/spark-warehouse/_build_info.json
ON_ENGINE := $(if $(filter postgres,$(ENGINE)),$(PY) -m data.pg_local run --,$(if $(filter spark,$(ENGINE)),SQLAGENT_DATABASE__URL='$(SPARK_URL)',$(if $(filter duckdb,$(ENGINE)),,$(error ENGINE must be duckdb, postgres or spark, not $(ENGINE)))))
ENGINE_DATA := $(if $(filter spark,$(ENGINE)),$(SPARK_WAREHOUSE))

$(SPARK_WAREHOUSE): data/lahman.duckdb data/load_spark.py
	$(PY) -m data.load_spark

demo: setup $(ENGINE_DATA)
	$(ON_ENGINE) $(SQLAGENT) ask "$(QUESTION)"

test: setup
	$(SQLAGENT) tools --lint
	$(PY) -m pytest -p no:cacheprovider

test-unit: setup
	$(PY) -m pytest -p no:cacheprovider -m "not integration and not engines"

# The tests against real database servers (a throwaway PostgreSQL cluster on a loopback port).
.PHONY: test-engines
test-engines: setup
	$(PY) -m pytest -p no:cacheprovider -m engines

test-integration: setup
	$(PY) -m pytest -p no:cacheprovider -m integration

# CI runs it before the tests (.ci/run): a lint error or an unformatted file fails the build.
lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	$(SQLAGENT) tools --lint
	$(PY) docs/gen_diagram.py --check

# Per node: ms and prompt tokens read / cached / written; p50/p95, first question, startup, peak RSS;
# bench/results/agent-<timestamp>.json. SPIDER: a Spider-style dataset for the agent-vs-bare-model
# ratio (read in place, never copied; skipped when the directory does not exist).
# e.g. make bench BENCH_ARGS="--limit 5 --compare bench/results/agent-20261201-120000.json"
SPIDER ?= /work/shared/bench/spider-sports-dev
BENCH_ARGS ?=
bench: setup
	$(PY) -m bench.bench_agent --spider "$(SPIDER)" $(BENCH_ARGS)
	$(PY) bench/bench_lm.py --model 1.5b

# The HTTP API under 50 authenticated clients (fake LM, its own process) for 30 s while the LM server
# is killed, the tracking store made unwritable and the database file replaced, one at a time; fails on
# any 5xx, hang, missed health probe or lost feedback (docs/recipes/serve-with-users.md has the numbers).
bench-load: setup
	$(PY) -m bench.bench_faults --clients 50 --seconds 30 --faults

# The HTTP API and the feedback/review web app on http://127.0.0.1:8000, without tokens on loopback.
# HOST=0.0.0.0 exposes it with tokens (`sqlagent users add NAME --role public --permissions ask,feedback`).
HOST ?= 127.0.0.1
PORT ?= 8000
LOOPBACK := 127.0.0.1 localhost ::1
.PHONY: serve
serve: setup
	$(SQLAGENT) serve --host $(HOST) --port $(PORT) $(if $(filter $(LOOPBACK),$(HOST)),--no-auth)

ui: setup
	.venv/bin/mlflow ui --backend-store-uri "$$($(PY) -c 'from agent.config import load_settings; print(load_settings().tracking.resolved_uri())')" --host 127.0.0.1 --port 5000 --workers 1

.PHONY: eval eval-accept eval-ablation gold-engines
# On another engine the run is kept apart (out/eval-postgres) and gated against its own baseline
# once one is accepted (evals/baseline-postgres.json), else against DuckDB's.
EVAL_SUFFIX := $(if $(filter duckdb,$(ENGINE)),,-$(ENGINE))
EVAL_BASELINE := $(or $(wildcard evals/baseline$(EVAL_SUFFIX).json),evals/baseline.json)
# The test split on the configured (embedded) model, gated against the committed baseline.
# make eval EVAL_ARGS=--judges adds the LLM judges (one more LM call per judge and answered question).
EVAL_ARGS ?=
eval: setup $(ENGINE_DATA)
	$(ON_ENGINE) $(SQLAGENT) eval --split test --baseline $(EVAL_BASELINE) --out out/eval$(EVAL_SUFFIX) $(EVAL_ARGS)

# Do the optimized modules in prompts/compiled help? The test split without them, then with them,
# gated against the run without (tolerance 0: fails when the compiled modules cost accuracy).
eval-ablation: setup
	$(SQLAGENT) eval --split test --no-compiled --out out/eval-no-compiled
	$(SQLAGENT) eval --split test --out out/eval-compiled --baseline out/eval-no-compiled/summary.json --tolerance 0

# Make the last `make eval` run the committed baseline (review evals/baseline.json, then commit it).
eval-accept: setup
	$(SQLAGENT) eval-accept --from out/eval$(EVAL_SUFFIX) --to evals/baseline$(EVAL_SUFFIX).json

# Does the golden set's gold SQL, transpiled by sqlglot, return the same rows on PostgreSQL as on DuckDB?
# (ENGINE=spark: on the Spark warehouse; out/gold-engines-spark.json)
gold-engines: setup $(ENGINE_DATA)
	$(if $(filter spark,$(ENGINE)),$(ON_ENGINE),$(PY) -m data.pg_local run --) $(PY) -m evals.gold_engines --split test --out out/gold-engines$(if $(filter spark,$(ENGINE)),-spark).json

clean:
	rm -rf .venv .uv mlruns mlflow.db .pytest_cache .ruff_cache .hypothesis data/lahman.duckdb data/*.tmp data/spark-warehouse
	rm -rf $(HOME)/.cache/sqlagent/catalogs
	@echo "Kept the assembled models in ~/.cache/sqlagent/models (delete them by hand to re-assemble)."

.PHONY: optimize
# DSPy optimization of the prompt modules on the golden set (train/dev); artifacts in prompts/compiled.
# e.g. make optimize OPTIMIZE_ARGS="--module generate --optimizer gepa --budget 40"
OPTIMIZE_ARGS ?= --module all --optimizer bootstrap --budget 16
optimize: setup
	$(SQLAGENT) optimize $(OPTIMIZE_ARGS)
