"""Tests that read ../shared beside the clone: marked `shared`, run by `make test-shared` only."""
