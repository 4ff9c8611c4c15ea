//! Redis store (placeholder).
