//! Which rate-limit buckets a request body spends: the `[[rate_limits]]` rules matched
//! against the caller and each message, counted per bucket.
//!
//! A message spends one request in every rule it matches. A rule's bucket is the
//! principal's ([`Identity::principal_key`]: auth method, subject, agent), or the
//! principal's for that tool with `per_tool`. A batch spends its messages together: a
//! bucket that three calls of the body match is asked for a cost of three at once, so a
//! batch passes or is refused whole. Responses (a client answering the server) are never
//! counted.

use crate::auth::Identity;
use crate::mcp::{Classified, McpAction};

use super::config::RateLimitConfig;
use super::gcra::Limit;

/// The compiled `[[rate_limits]]` rules.
#[derive(Debug, Clone, Default)]
pub struct RateRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    principal: Option<String>,
    role: Option<String>,
    agent: Option<String>,
    tool: Option<String>,
    method: Option<String>,
    per_tool: bool,
    limit: Limit,
}

/// One bucket a body spends, and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    /// The rule's name.
    pub rule: String,
    /// The bucket within the rule: the principal key, and the tool with `per_tool`
    /// (hashed before it becomes a Redis key).
    pub bucket: String,
    /// The rule's limit.
    pub limit: Limit,
    /// Requests spent.
    pub cost: u64,
}

impl RateRules {
    /// Compile checked rules.
    pub fn new(configs: &[RateLimitConfig]) -> RateRules {
        let rules = configs
            .iter()
            .map(|c| Rule {
                name: c.name.clone(),
                principal: c.principal.clone(),
                role: c.role.clone(),
                agent: c.agent.clone(),
                tool: c.tool.clone(),
                method: c.method.clone(),
                per_tool: c.per_tool,
                limit: Limit::new(c.rate, c.per, c.burst.unwrap_or(c.rate)),
            })
            .collect();
        RateRules { rules }
    }

    /// No rules: nothing is ever counted.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The buckets `messages` of `identity` spend, in rule order.
    pub fn spends(&self, identity: &Identity, messages: &[Classified]) -> Vec<Spend> {
        let mut out: Vec<Spend> = Vec::new();
        if self.rules.is_empty() {
            return out;
        }
        let principal = identity.principal_key();
        for rule in &self.rules {
            if !rule.matches_caller(identity) {
                continue;
            }
            for message in messages {
                let Some(method) = message.method.as_deref() else {
                    continue; // a response
                };
                let tool = match &message.action {
                    McpAction::CallTool { name, .. } => Some(name.as_str()),
                    _ => None,
                };
                if !rule.matches_message(method, tool) {
                    continue;
                }
                let bucket = match (rule.per_tool, tool) {
                    (true, Some(tool)) => format!("{principal}\u{0}{tool}"),
                    _ => principal.clone(),
                };
                match out
                    .iter_mut()
                    .find(|s| s.rule == rule.name && s.bucket == bucket)
                {
                    Some(spend) => spend.cost += 1,
                    None => out.push(Spend {
                        rule: rule.name.clone(),
                        bucket,
                        limit: rule.limit,
                        cost: 1,
                    }),
                }
            }
        }
        out
    }
}

impl Rule {
    fn matches_caller(&self, identity: &Identity) -> bool {
        let principal = self
            .principal
            .as_deref()
            .is_none_or(|p| glob(p, &identity.subject));
        let role = self
            .role
            .as_deref()
            .is_none_or(|r| identity.roles.iter().any(|have| have == r));
        let agent = match (&self.agent, &identity.agent) {
            (None, _) => true,
            (Some(pattern), Some(agent)) => glob(pattern, agent),
            (Some(_), None) => false,
        };
        principal && role && agent
    }

    fn matches_message(&self, method: &str, tool: Option<&str>) -> bool {
        let method_ok = self.method.as_deref().is_none_or(|m| glob(m, method));
        let tool_ok = match (&self.tool, tool) {
            (None, _) => true,
            (Some(pattern), Some(tool)) => glob(pattern, tool),
            (Some(_), None) => false,
        };
        method_ok && tool_ok
    }
}

/// `*` matches any run of characters, `?` any one; everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::ListKind;
    use serde_json::json;

    fn rules(text: &str) -> RateRules {
        #[derive(serde::Deserialize)]
        struct R {
            rate_limits: Vec<RateLimitConfig>,
        }
        let r: R = toml::from_str(text).unwrap();
        super::super::config::check_rules(&r.rate_limits).unwrap();
        RateRules::new(&r.rate_limits)
    }

    fn user(sub: &str, roles: &[&str], agent: Option<&str>) -> Identity {
        let mut i = Identity::anonymous();
        i.subject = sub.into();
        i.roles = roles.iter().map(|r| r.to_string()).collect();
        i.agent = agent.map(str::to_owned);
        i.method = crate::auth::AuthMethod::Jwt;
        i
    }

    fn call(name: &str) -> Classified {
        Classified {
            id: Some(json!(1)),
            method: Some("tools/call".into()),
            action: McpAction::CallTool {
                name: name.into(),
                arguments: json!({}),
            },
            protocol_version: None,
            mcp_name: None,
        }
    }

    fn list() -> Classified {
        Classified {
            id: Some(json!(2)),
            method: Some("tools/list".into()),
            action: McpAction::List(ListKind::Tools),
            protocol_version: None,
            mcp_name: None,
        }
    }

    fn response() -> Classified {
        Classified {
            id: Some(json!(3)),
            method: None,
            action: McpAction::Response,
            protocol_version: None,
            mcp_name: None,
        }
    }

    #[test]
    fn globs() {
        for (p, t, m) in [
            ("*", "", true),
            ("*", "anything", true),
            ("get_*", "get_record", true),
            ("get_*", "set_record", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*_db_*", "read_db_rows", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("**a", "ba", true),
        ] {
            assert_eq!(glob(p, t), m, "{p} {t}");
        }
    }

    #[test]
    fn a_rule_counts_per_principal_and_a_batch_spends_together() {
        let r = rules("[[rate_limits]]\nname = \"calls\"\nmethod = \"tools/call\"\nrate = 10\n");
        let alice = user("alice", &[], None);
        let spends = r.spends(&alice, &[call("a"), call("b"), list(), response()]);
        assert_eq!(spends.len(), 1);
        assert_eq!(
            spends[0].cost, 2,
            "two calls; the list and the response are not counted"
        );
        assert_eq!(spends[0].bucket, "jwt:alice");
        assert_eq!(spends[0].limit.burst, 10);
        let bob = r.spends(&user("bob", &[], None), &[call("a")]);
        assert_ne!(bob[0].bucket, spends[0].bucket);
    }

    #[test]
    fn per_tool_rules_keep_a_bucket_per_tool() {
        let r = rules(
            "[[rate_limits]]\nname = \"t\"\ntool = \"get_*\"\nper_tool = true\nrate = 5\nburst = 2\n",
        );
        let alice = user("alice", &[], None);
        let spends = r.spends(
            &alice,
            &[call("get_a"), call("get_b"), call("get_a"), call("put")],
        );
        assert_eq!(spends.len(), 2);
        assert_eq!((spends[0].cost, spends[1].cost), (2, 1));
        assert_eq!(spends[0].limit.burst, 2);
        assert!(
            r.spends(&alice, &[list()]).is_empty(),
            "a tool rule needs a tool call"
        );
    }

    #[test]
    fn callers_are_matched_by_subject_role_and_agent() {
        let r = rules(
            "[[rate_limits]]\nname = \"bots\"\nprincipal = \"svc-*\"\nrole = \"batch\"\nagent = \"crawler*\"\nrate = 1\n",
        );
        let m = [call("x")];
        assert_eq!(
            r.spends(&user("svc-1", &["batch"], Some("crawler-2")), &m)
                .len(),
            1
        );
        assert!(r.spends(&user("svc-1", &["batch"], None), &m).is_empty());
        assert!(r
            .spends(&user("svc-1", &[], Some("crawler")), &m)
            .is_empty());
        assert!(r
            .spends(&user("alice", &["batch"], Some("crawler")), &m)
            .is_empty());
    }

    #[test]
    fn every_matching_rule_spends() {
        let r = rules(
            "[[rate_limits]]\nname = \"all\"\nrate = 100\n[[rate_limits]]\nname = \"calls\"\nmethod = \"tools/*\"\nrate = 10\n",
        );
        let spends = r.spends(&user("a", &[], None), &[call("x"), list()]);
        let costs: Vec<_> = spends.iter().map(|s| (s.rule.as_str(), s.cost)).collect();
        assert_eq!(costs, [("all", 2), ("calls", 2)]);
        assert!(RateRules::default()
            .spends(&user("a", &[], None), &[call("x")])
            .is_empty());
    }
}
