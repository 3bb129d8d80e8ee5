//! `mlpolicy lsp`: a Language Server Protocol server over stdio for `.mlp` files.
//!
//! It works on the configuration directory that holds each open file: every analysis is one
//! run of the compiler ([`mlpolicy_lang::compile_with`]) with the editor's unsaved buffers in
//! place of the files on disk, so diagnostics are exactly those of `mlpolicy validate` (codes,
//! messages, help, policy findings). Completion, hover, navigation and rename read the
//! compiler's syntax trees and model ([`index`]); formatting is `mlpolicy fmt`'s formatter.
//! Nothing here talks to Azure or the network.
//!
//! Built on `lsp-server` (rust-analyzer's synchronous scaffold) and `lsp-types`: the compiler is
//! synchronous and fast, so one thread that handles one message at a time, with a debounce
//! timer, is all a server needs; an async runtime would add a dependency and nothing else.

pub mod actions;
pub mod analysis;
pub mod complete;
pub mod context;
pub mod docs;
pub mod hover;
pub mod index;
pub mod navigate;
pub mod roles;
mod server;
pub mod text;

pub use server::{DEBOUNCE, run};

/// Serves the protocol on stdin and stdout until the client says `exit`. `Ok(())` after a
/// `shutdown` then `exit`, an error otherwise (the protocol's exit code 1).
pub fn run_stdio() -> Result<(), String> {
    let (connection, io_threads) = lsp_server::Connection::stdio();
    let result = run(&connection);
    drop(connection);
    io_threads.join().map_err(|e| format!("mlpolicy lsp: {e}"))?;
    result
}
