"""Reliability and security scenarios (issue 8): fault injection, fuzzing, soak."""
