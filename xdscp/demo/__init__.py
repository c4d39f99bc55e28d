"""Demo pieces: backends that say who they are, for the demo, the compose stack and tests."""
