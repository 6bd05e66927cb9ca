"""Issue 8's "Prove it" suite: tests that break things on purpose (`make faults`)."""
