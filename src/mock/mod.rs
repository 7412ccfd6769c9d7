//! A mock upstream speaking the providers' exact wire formats, for tests and benches.
