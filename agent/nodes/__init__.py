"""One file per graph node. A node reads state, calls one module or tool, returns a partial update."""
