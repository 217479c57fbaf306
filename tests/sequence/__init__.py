"""Tests of sequence cases (pgverify.sequence)."""
