"""DSPy optimization of the agent's prompt modules (`sqlagent optimize`).

data.py builds each module's examples from the golden set, metrics.py scores them, optimizers.py
wraps the DSPy optimizers, run.py ties it together with the dev-score guard, registry.py records
versions in the MLflow Prompt Registry, cli.py is the subcommand. Artifacts: prompts/compiled.py.
"""
