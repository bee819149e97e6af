//! Strict JSON-RPC body parsing (contract stub).

use serde_json::Value;

use super::Classified;

/// A request body, parsed and classified.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedBody {
    /// `true` if the body was a JSON array (a batch).
    pub batch: bool,
    /// The messages, in body order (one for a non-batch body).
    pub messages: Vec<Classified>,
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON.
    #[error("malformed JSON: {reason}")]
    Malformed {
        /// serde_json's message.
        reason: String,
    },
    /// An object has the same key twice.
    #[error("duplicate key `{key}`")]
    DuplicateKey {
        /// The repeated key (unescaped).
        key: String,
    },
    /// Nesting deeper than allowed.
    #[error("nesting deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// JSON, but not a JSON-RPC 2.0 message or batch.
    #[error("not a JSON-RPC message: {reason}")]
    NotJsonRpc {
        /// What is wrong.
        reason: String,
    },
}

impl BodyError {
    /// The JSON-RPC error code for this refusal.
    pub fn code(&self) -> i64 {
        match self {
            BodyError::Malformed { .. } => super::errors::PARSE_ERROR,
            _ => super::errors::INVALID_REQUEST,
        }
    }
}

/// Parse JSON strictly: duplicate keys and nesting beyond `max_depth` are errors.
pub fn parse_strict(_bytes: &[u8], _max_depth: usize) -> Result<Value, BodyError> {
    todo!()
}

/// Parse and classify a request body.
pub fn parse_request_body(_bytes: &[u8], _max_depth: usize) -> Result<ParsedBody, BodyError> {
    todo!()
}
