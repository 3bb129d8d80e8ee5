//! The vocabulary every stage of mlpolicy shares, each word defined once: ARM ids and scopes
//! ([`arm`]), GUIDs ([`guid`]), timestamps ([`time`]), Azure's built-in roles ([`roles`]) and
//! "did you mean" ([`suggest`]). No stage of the pipeline, no I/O.

pub mod arm;
pub mod guid;
pub mod roles;
pub mod suggest;
pub mod time;
