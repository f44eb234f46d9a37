"""Test and demo harness: feeders, observers and process supervisors (not the gate)."""
