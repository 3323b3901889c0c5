"""Test doubles shared by the test suites (the fake upstream's pytest helpers live here)."""
