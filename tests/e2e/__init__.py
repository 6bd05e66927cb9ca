"""End-to-end tests: the real `reconciler` process against simulators served on loopback."""
