//! `kura-testing`: the fixtures every suite shares (a dev-dependency only) — a throwaway
//! PostgreSQL schema ([`postgres`]), a real `kura-server` on loopback ports with clients
//! that trust its CA ([`server`]), a minimal agent speaking the vault protocol
//! ([`agent`]), signed-in users ([`user`]) and operators ([`operator`]), the browser
//! tests' driver ([`browser`]), a browser without JavaScript on the portal
//! ([`portal`]), a real SMTP server writing a Maildir ([`smtp`]) and partitioned disk
//! images made by the real tools ([`disk`]).
//!
//! It knows the server only from outside (its config, its HTTP API, its data directory),
//! like a customer or operator would.

pub mod agent;
pub mod browser;
pub mod disk;
pub mod operator;
pub mod portal;
pub mod postgres;
pub mod server;
pub mod smtp;
pub mod user;

pub use server::{
    TestServer, client_trusting, error_of, free_port, parts, prompt_jobs, start, start_in, start_on_postgres,
};
