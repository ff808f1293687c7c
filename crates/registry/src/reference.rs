//! Image references with docker's normalisation.
