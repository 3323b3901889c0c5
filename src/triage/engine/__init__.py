"""How a planned request reaches a deployment: the runner and its lanes."""
