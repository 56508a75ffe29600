"""Long, bounded runs of the reliability tests; short versions run in the test suite."""
