//! HTTP tests: start the emulator on port 0 and talk to it with plain reqwest.
