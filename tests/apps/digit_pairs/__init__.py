"""Tests of the digit_pairs app."""
