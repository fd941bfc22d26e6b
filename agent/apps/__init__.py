"""The applications on top of the runtime: CLI, web app, doctor, init, renderers."""
