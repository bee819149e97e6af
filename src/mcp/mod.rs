//! MCP over JSON-RPC: strict parsing of request bodies, classification into
//! [`McpAction`]s, the `Mcp-Method`/`Mcp-Name` mirror check, SSE framing and list-result
//! filtering. Everything here takes bytes and headers and returns typed values; nothing
//! here does I/O.

mod action;
pub mod errors;
pub mod filter;
pub mod headers;
pub mod jsonrpc;
pub mod raw;
pub mod sse;

pub use action::{methods, Classified, CompletionRef, ListKind, McpAction};
pub use filter::{filter_list_response, is_response, response_id, FilterError};
pub use headers::{check_mirrored_headers, HeaderMismatch};
pub use jsonrpc::{id_key, parse_request_body, parse_strict, BodyError, ParsedBody};
pub use sse::{SseError, SseEvent, SseFramer};
