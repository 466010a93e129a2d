//! Authorization: actions and permission patterns, binding conditions, and the decision.

pub mod action;
pub mod condition;
pub mod engine;
