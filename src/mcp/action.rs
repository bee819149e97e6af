//! What a JSON-RPC message asks for, in the terms policies are written in.
//!
//! Classification happens once, on the parsed body; the policy engine and the audit log
//! only ever see an [`McpAction`], never raw JSON or HTTP headers.

use serde_json::Value;

/// MCP method names the proxy treats specially.
pub mod methods {
    /// Call a tool.
    pub const TOOLS_CALL: &str = "tools/call";
    /// List tools.
    pub const TOOLS_LIST: &str = "tools/list";
    /// Read a resource.
    pub const RESOURCES_READ: &str = "resources/read";
    /// Subscribe to a resource.
    pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
    /// Unsubscribe from a resource.
    pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
    /// List resources.
    pub const RESOURCES_LIST: &str = "resources/list";
    /// List resource templates.
    pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
    /// Get a prompt.
    pub const PROMPTS_GET: &str = "prompts/get";
    /// List prompts.
    pub const PROMPTS_LIST: &str = "prompts/list";
    /// Argument completion.
    pub const COMPLETION_COMPLETE: &str = "completion/complete";
    /// Session initialization (revisions up to 2025-11-25).
    pub const INITIALIZE: &str = "initialize";
    /// Liveness check.
    pub const PING: &str = "ping";
    /// Capability discovery (revision 2026-07-28).
    pub const SERVER_DISCOVER: &str = "server/discover";
    /// Logging level change.
    pub const LOGGING_SET_LEVEL: &str = "logging/setLevel";
    /// Poll a task (tasks extension).
    pub const TASKS_GET: &str = "tasks/get";
    /// Fetch a task's result (tasks extension).
    pub const TASKS_RESULT: &str = "tasks/result";
    /// List tasks (tasks extension).
    pub const TASKS_LIST: &str = "tasks/list";
    /// Cancel a task (tasks extension).
    pub const TASKS_CANCEL: &str = "tasks/cancel";
    /// Update a task (tasks extension).
    pub const TASKS_UPDATE: &str = "tasks/update";
    /// Open a stream of list-changed and other subscribed notifications (revision
    /// 2026-07-28); its answer is a long-lived event stream, filtered like a GET stream.
    pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
    /// Prefix of every notification method (`notifications/initialized`, …).
    pub const NOTIFICATIONS_PREFIX: &str = "notifications/";
}

/// The `params` member an `Mcp-Name` header mirrors for `method` (SEP-2243), if the
/// method names a target.
pub(crate) fn mcp_name_key(method: &str) -> Option<&'static str> {
    match method {
        methods::TOOLS_CALL | methods::PROMPTS_GET => Some("name"),
        methods::RESOURCES_READ | methods::RESOURCES_SUBSCRIBE | methods::RESOURCES_UNSUBSCRIBE => {
            Some("uri")
        }
        methods::TASKS_GET | methods::TASKS_UPDATE | methods::TASKS_CANCEL => Some("taskId"),
        _ => None,
    }
}

/// The four list methods whose results are filtered per caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// `tools/list` → `result.tools[]`, items named by `name`.
    Tools,
    /// `resources/list` → `result.resources[]`, items named by `uri`.
    Resources,
    /// `resources/templates/list` → `result.resourceTemplates[]`, named by `uriTemplate`.
    ResourceTemplates,
    /// `prompts/list` → `result.prompts[]`, items named by `name`.
    Prompts,
}

impl ListKind {
    /// The JSON-RPC method that produces this list.
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => methods::TOOLS_LIST,
            ListKind::Resources => methods::RESOURCES_LIST,
            ListKind::ResourceTemplates => methods::RESOURCES_TEMPLATES_LIST,
            ListKind::Prompts => methods::PROMPTS_LIST,
        }
    }

    /// The key of the array inside `result`.
    pub fn result_key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
            ListKind::Prompts => "prompts",
        }
    }

    /// The key naming each item of the array.
    pub fn item_key(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::ResourceTemplates => "uriTemplate",
        }
    }
}

/// The thing a `completion/complete` request refers to.
#[derive(Debug, Clone, PartialEq)]
pub enum CompletionRef {
    /// `{"type": "ref/prompt", "name": …}`
    Prompt(String),
    /// `{"type": "ref/resource", "uri": …}`
    Resource(String),
}

/// One classified JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum McpAction {
    /// `tools/call`: a tool name and its arguments (a JSON object, `{}` when absent).
    CallTool {
        /// Tool name, unescaped.
        name: String,
        /// `params.arguments`.
        arguments: Value,
    },
    /// `resources/read`.
    ReadResource {
        /// Resource URI.
        uri: String,
    },
    /// `resources/subscribe` and `resources/unsubscribe`.
    SubscribeResource {
        /// Resource URI.
        uri: String,
        /// `true` for unsubscribe.
        unsubscribe: bool,
    },
    /// `prompts/get`.
    GetPrompt {
        /// Prompt name.
        name: String,
        /// `params.arguments` (`{}` when absent).
        arguments: Value,
    },
    /// `completion/complete`.
    Complete {
        /// The referenced prompt or resource.
        reference: CompletionRef,
    },
    /// One of the list methods; the result is filtered per caller.
    List(ListKind),
    /// Protocol plumbing: `initialize`, `ping`, `notifications/*`, `server/discover`,
    /// `logging/setLevel`, `subscriptions/listen`, `tasks/*` (a task operation is decided as
    /// the call that created its task, see [`crate::exchange::tasks`]). Allowed for an authenticated caller unless a
    /// policy forbids it.
    Protocol {
        /// The JSON-RPC method.
        method: String,
    },
    /// A response (result or error) to a request the server sent the client.
    Response,
    /// Any other method. Needs an explicit permit.
    Other {
        /// The JSON-RPC method.
        method: String,
    },
}

impl McpAction {
    /// The name the policy model uses for this action (`Action::"<name>"` in Cedar).
    pub fn policy_action(&self) -> &'static str {
        match self {
            McpAction::CallTool { .. } => "call_tool",
            McpAction::ReadResource { .. } => "read_resource",
            McpAction::SubscribeResource { .. } => "subscribe_resource",
            McpAction::GetPrompt { .. } => "get_prompt",
            McpAction::Complete { .. } => "complete",
            McpAction::List(ListKind::Tools) => "list_tools",
            McpAction::List(ListKind::Resources) => "list_resources",
            McpAction::List(ListKind::ResourceTemplates) => "list_resource_templates",
            McpAction::List(ListKind::Prompts) => "list_prompts",
            McpAction::Protocol { .. } => "protocol",
            McpAction::Response => "respond",
            McpAction::Other { .. } => "other",
        }
    }

    /// Whether this action is allowed by default (only a matching `forbid` denies it),
    /// as opposed to needing a matching `permit`.
    pub fn allowed_unless_forbidden(&self) -> bool {
        matches!(
            self,
            McpAction::List(_) | McpAction::Protocol { .. } | McpAction::Response
        )
    }
}

/// One message of a request body, classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The JSON-RPC id; `None` for notifications.
    pub id: Option<Value>,
    /// The JSON-RPC method, `None` for responses.
    pub method: Option<String>,
    /// What it asks for.
    pub action: McpAction,
    /// The protocol revision named in `params._meta` (2026-07-28) or in
    /// `initialize`'s `params.protocolVersion`, if any.
    pub protocol_version: Option<String>,
    /// The value an `Mcp-Name` header must mirror (MCP 2026-07-28, SEP-2243):
    /// `params.name` for `tools/call` and `prompts/get`, `params.uri` for
    /// `resources/read`/`subscribe`/`unsubscribe`, `params.taskId` for
    /// `tasks/get`/`update`/`cancel`. `None` for other methods, or when that field is
    /// absent or not a string.
    pub mcp_name: Option<String>,
}
