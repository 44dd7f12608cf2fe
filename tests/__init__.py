"""npuprofile test suite."""
