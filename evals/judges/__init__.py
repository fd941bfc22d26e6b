"""LLM judges, built the MLflow way (`mlflow.genai.judges.make_judge`), and aligned to reviewers.

specs.py      a judge's versioned definition (one YAML file per judge, in this folder)
case.py       what a judge reads about one answer (from an eval record, a result or a trace)
model.py      which LM a judge calls: any configured LM, the embedded one by default
build.py      the MLflow judges, and one verdict per case
labels.py     the hand-reviewed labels (labels/*.jsonl) as MLflow traces with human feedback
agreement.py  accuracy and Cohen's kappa against the reviewers
align.py      `sqlagent judges align`: SIMBA over the labels, agreement before/after on held-out labels
sources.py    the labelled set and the review queue, logged as labelled traces
cli.py        `sqlagent judges list|load-labels|align|agree|register`
"""
