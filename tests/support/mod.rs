#![allow(dead_code, unreachable_pub)]
//! Shared helpers for the behaviour tests.

pub mod app;
pub mod redis;
