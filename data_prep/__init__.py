"""Data builders: readers, verl parquet writers, safety-aware concatenation, hard-sample mining."""
