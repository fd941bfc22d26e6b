"""The language models: the embedded model (assemble + verify, server lifecycle) and choosing an LM."""
