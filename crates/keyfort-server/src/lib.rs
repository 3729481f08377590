//! Keyfort's server: configuration, TLS, the HTTPS surface and dev mode.
//! [`serve::serve`] runs a node from a [`serve::Setup`], which both
//! `keyfort server` ([`serve::setup_from_config`]) and `keyfort dev`
//! ([`dev::run`]) build.

pub mod bootstrap;
pub mod config;
pub mod dev;
pub mod http;
pub mod keyfile;
pub mod operator;
pub mod serve;
pub mod webhook_sink;
