"""Black-box tests: a served `taskbeat serve` process (or the container) through HTTP."""
