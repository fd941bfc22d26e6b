"""sqlagent: a text-to-SQL agent template.

Importing the package sets the offline switches the stack needs on a machine with no internet:
litellm must not fetch its cost map (it would keep a retry thread alive), MLflow must not
send telemetry nor fetch its model catalog (a judge call looks its model up there). They are set
here, not only in the Makefile, so every entry point gets them.
"""

import os

for _name, _value in {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # MLflow's judges look a model's context size and price up in a catalog they fetch from GitHub.
    "MLFLOW_MODEL_CATALOG_URI": "",
}.items():
    os.environ.setdefault(_name, _value)
