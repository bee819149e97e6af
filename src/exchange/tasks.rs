//! The task table (MCP tasks extension, `io.modelcontextprotocol/tasks`): which principal
//! created each task, and the call that created it.
//!
//! A server may answer a `tools/call` with a task handle (`resultType: "task"` and a
//! `taskId`) instead of its result; the client then polls `tasks/get`, answers input
//! requests with `tasks/update`, cancels with `tasks/cancel` (and, in 2025-11-25, fetches
//! the result with `tasks/result`). A task id is a bearer handle to that call's result,
//! so, like a session id, it is bound to the principal whose call created it: another
//! principal naming it is refused ([`TaskError::NotOwner`]), and an id the proxy never saw
//! created is refused too ([`TaskError::Unknown`]: fail closed). The policy sees every
//! task operation as the call that created the task — `call_tool` on the task's tool,
//! with its arguments — decided again each time, so a caller who may no longer make the
//! call (a reload, taint, an attenuated token) cannot poll, feed or read it either.
//!
//! The table is bounded and forgets tasks after [`TASK_TTL`]; it lives in this process
//! (a task created through one replica is refused on another; see the limitations page).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;

/// How long a task binding is remembered after its creation.
pub const TASK_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Most tasks remembered at once; beyond that, the oldest binding is forgotten (its
/// owner's next task operation is refused, never another principal's allowed).
pub const MAX_TASKS: usize = 100_000;

/// The methods that operate on an existing task, named by `params.taskId`.
pub const TASK_METHODS: [&str; 4] = ["tasks/get", "tasks/update", "tasks/cancel", "tasks/result"];

/// The call that created a task: what its task operations are decided as.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCall {
    /// The tool called.
    pub tool: String,
    /// The call's arguments.
    pub arguments: Value,
}

/// Why a task operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The proxy saw no task with this id created (expired, forgotten, created elsewhere).
    #[error("unknown task")]
    Unknown,
    /// The task was created by another principal.
    #[error("task belongs to another principal")]
    NotOwner,
    /// A task operation without a text `params.taskId`.
    #[error("task operation without a taskId")]
    NoTaskId,
}

struct Entry {
    owner: String,
    call: TaskCall,
    created: Instant,
}

/// Bounded map from task id to its owner and creating call.
pub struct TaskTable {
    entries: Mutex<HashMap<String, Entry>>,
    max: usize,
    ttl: Duration,
}

impl Default for TaskTable {
    fn default() -> Self {
        TaskTable::new(MAX_TASKS, TASK_TTL)
    }
}

impl TaskTable {
    /// An empty table.
    pub fn new(max: usize, ttl: Duration) -> Self {
        TaskTable {
            entries: Mutex::new(HashMap::new()),
            max: max.max(1),
            ttl,
        }
    }

    /// Record that `owner`'s `call` created `task_id`. An id already bound to another
    /// principal keeps its owner (an upstream reusing ids must not hand a task over).
    pub fn bind(&self, task_id: &str, owner: &str, call: TaskCall) -> Result<(), TaskError> {
        let mut entries = self.entries.lock();
        let now = Instant::now();
        if let Some(e) = entries.get(task_id) {
            if now.duration_since(e.created) <= self.ttl {
                return if e.owner == owner {
                    Ok(())
                } else {
                    Err(TaskError::NotOwner)
                };
            }
        }
        if entries.len() >= self.max {
            let ttl = self.ttl;
            entries.retain(|_, e| now.duration_since(e.created) <= ttl);
            if entries.len() >= self.max {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.created)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(
            task_id.to_owned(),
            Entry {
                owner: owner.to_owned(),
                call,
                created: now,
            },
        );
        Ok(())
    }

    /// The call that created `task_id`, if `principal` owns it.
    pub fn call_of(&self, task_id: &str, principal: &str) -> Result<TaskCall, TaskError> {
        let mut entries = self.entries.lock();
        match entries.get(task_id) {
            None => Err(TaskError::Unknown),
            Some(e) if Instant::now().duration_since(e.created) > self.ttl => {
                entries.remove(task_id);
                Err(TaskError::Unknown)
            }
            Some(e) if e.owner != principal => Err(TaskError::NotOwner),
            Some(e) => Ok(e.call.clone()),
        }
    }

    /// Number of tasks remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Is the table empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The task id a task-creating answer carries: `result.taskId` with `resultType: "task"`
/// (2026-07-28 extension), or `result.task.taskId` (2025-11-25).
pub fn created_task_id(message: &Value) -> Option<&str> {
    let result = message.get("result")?;
    if result.get("resultType").and_then(Value::as_str) == Some("task") {
        return result.get("taskId").and_then(Value::as_str);
    }
    result
        .get("task")
        .and_then(|t| t.get("taskId"))
        .and_then(Value::as_str)
}

/// May this `tools/call` request (its whole JSON message) be answered with a task? Only
/// if it declares the tasks extension in its per-request capabilities (2026-07-28: the
/// server must not create a task otherwise) or asks for one with `params.task`
/// (2025-11-25).
pub fn may_create_task(message: &Value) -> bool {
    let params = message.get("params");
    let declared = params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get("io.modelcontextprotocol/clientCapabilities"))
        .and_then(|c| c.get("extensions"))
        .and_then(|e| e.get("io.modelcontextprotocol/tasks"))
        .is_some();
    declared || params.and_then(|p| p.get("task")).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call() -> TaskCall {
        TaskCall {
            tool: "report".into(),
            arguments: json!({"q": 1}),
        }
    }

    #[test]
    fn a_task_is_bound_to_its_creator() {
        let t = TaskTable::default();
        t.bind("t1", "jwt:alice", call()).unwrap();
        assert_eq!(t.call_of("t1", "jwt:alice"), Ok(call()));
        assert_eq!(t.call_of("t1", "jwt:mallory"), Err(TaskError::NotOwner));
        assert_eq!(t.call_of("t2", "jwt:alice"), Err(TaskError::Unknown));
        // an upstream reusing the id cannot hand the task over
        assert_eq!(
            t.bind("t1", "jwt:mallory", call()),
            Err(TaskError::NotOwner)
        );
        assert_eq!(t.call_of("t1", "jwt:mallory"), Err(TaskError::NotOwner));
    }

    #[test]
    fn expired_tasks_are_unknown_and_the_table_is_bounded() {
        let t = TaskTable::new(2, Duration::ZERO);
        t.bind("t1", "a", call()).unwrap();
        crate::testing::let_the_clock_tick();
        assert_eq!(t.call_of("t1", "a"), Err(TaskError::Unknown));
        let t = TaskTable::new(2, Duration::from_secs(60));
        for id in ["t1", "t2", "t3"] {
            t.bind(id, "a", call()).unwrap();
        }
        assert_eq!(t.len(), 2);
        assert_eq!(t.call_of("t3", "a"), Ok(call()));
    }

    #[test]
    fn task_handles_are_recognised_in_both_revisions() {
        let modern =
            json!({"id":1,"result":{"resultType":"task","taskId":"t9","status":"working"}});
        assert_eq!(created_task_id(&modern), Some("t9"));
        let older = json!({"id":1,"result":{"task":{"taskId":"t8","status":"working"}}});
        assert_eq!(created_task_id(&older), Some("t8"));
        // `taskId` on a result that is not a task handle (a `tasks/get` answer) is not one
        let polled = json!({"id":1,"result":{"resultType":"complete","taskId":"t9"}});
        assert_eq!(created_task_id(&polled), None);
        assert_eq!(
            created_task_id(&json!({"id":1,"result":{"content":[]}})),
            None
        );
    }

    #[test]
    fn only_calls_that_allow_a_task_are_watched_for_one() {
        let declared = json!({"method":"tools/call","params":{"name":"x","_meta":{
            "io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}}});
        assert!(may_create_task(&declared));
        let asked = json!({"method":"tools/call","params":{"name":"x","task":{"ttl":1000}}});
        assert!(may_create_task(&asked));
        let plain = json!({"method":"tools/call","params":{"name":"x","arguments":{}}});
        assert!(!may_create_task(&plain));
    }
}
