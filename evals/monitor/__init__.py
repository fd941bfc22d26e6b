"""Online monitoring: the server's answers, sampled and scored in the background, read back over time.

scorers.py   code scorers of one answer (no LM): valid SQL, rows, latency, tokens, status
sampler.py   the background worker that scores sampled answers and writes the scores on the traces
windows.py   rates over time windows read from the traces, and the thresholds that raise alerts
metrics.py   the same as Prometheus metrics (the server's /metrics)
cli.py       `sqlagent monitor [--window 1h] [--check]`
"""
