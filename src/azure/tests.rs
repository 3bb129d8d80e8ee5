//! Tests for the Azure client.
