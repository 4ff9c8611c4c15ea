#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]
//! Shared helpers for the behaviour tests.

pub mod app;
pub mod backend;
pub mod dynamodb;
pub mod faulty_proxy;
pub mod logs;
pub mod orders;
pub mod postgres;
pub mod redis;
pub mod spring;
pub mod store_contract;
pub mod varnish;
