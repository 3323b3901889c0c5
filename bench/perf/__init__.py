"""`make bench`: Triage against the fake upstream, a bare pass-through and LiteLLM's proxy."""
