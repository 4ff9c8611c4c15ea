//! The crate's reference documentation says what each type does; this guide says how the
//! parts fit together and which choices an application makes. Read it in order the first
//! time:
//!
//! 1. [The protocol](crate::guide::protocol): what happens to a request, the life of its
//!    key, and the order of the checks.
//! 2. [Choosing a store](crate::guide::stores): memory, Redis (and Redis Cluster),
//!    PostgreSQL or DynamoDB; what each costs per request and what it needs.
//! 3. [Fail open or fail closed](crate::guide::fail_open): what a route does while its
//!    store is down.
//! 4. [Porting from Spring `@Idempotent`](crate::guide::spring): the aspect's options and
//!    records, and a Spring service and a Rust service sharing one Redis during the port.
//! 5. [The same-transaction mode, and an outbox](crate::guide::same_transaction): a
//!    handler's writes and its idempotency record committed together.
//! 6. [Without the macro](crate::guide::without_macro): the protocol as tower middleware,
//!    a nested router, and a gateway in front of any HTTP service.
//! 7. [The client](crate::guide::client): `idempotent-client`, which sends one key per
//!    logical request and retries what is safe to retry.
//! 8. [Observability](crate::guide::observability): metrics through the `metrics` facade,
//!    the span of each request, and the layer's part of the OpenAPI document.
//!
//! Every Rust example in the guide is compiled as a test; those that need a running server
//! are compiled and not run.
//!
//! This module contains no code: it is documentation only.

#[doc = include_str!("../docs/guide/01-protocol.md")]
pub mod protocol {}

#[doc = include_str!("../docs/guide/02-stores.md")]
pub mod stores {}

#[doc = include_str!("../docs/guide/03-fail-open.md")]
pub mod fail_open {}

#[doc = include_str!("../docs/guide/04-spring.md")]
pub mod spring {}

#[doc = include_str!("../docs/guide/05-same-transaction.md")]
pub mod same_transaction {}

#[doc = include_str!("../docs/guide/06-without-the-macro.md")]
pub mod without_macro {}

#[doc = include_str!("../docs/guide/07-client.md")]
pub mod client {}

#[doc = include_str!("../docs/guide/08-observability.md")]
pub mod observability {}
