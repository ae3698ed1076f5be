"""Benchmarks of custpipe on public data sets (apart from `custpipe.bench`'s generated demo)."""
