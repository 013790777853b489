"""The benchmark suite: `make bench` (full) and `make bench-quick` (the CI smoke run)."""
