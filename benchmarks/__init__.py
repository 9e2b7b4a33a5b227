"""Benchmarks: long runs that write JSON to benchmarks/results/ (BENCHMARKS.md is generated)."""
