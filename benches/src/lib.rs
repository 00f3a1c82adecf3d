//! Criterion benchmarks of the flux crates; see `README.md` for the figures and how to run them.
