//! Integration tests: the real `etd` binary against real sample data. One test binary with modules
//! keeps link time down.

mod it;
