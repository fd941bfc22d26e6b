"""Exit codes and default paths shared by `sqlagent eval` and `sqlagent eval-accept`."""

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_BASELINE = "evals/baseline.json"
DEFAULT_OUT = "out/eval"
