//! Every function's event for many warm invocations in a row (the memory and the invocation
//! steps), and whether a function answered it as it should.

use crate::support::{
    as_user, create_pat_body, event, first_page, record_use, seed_authorizer_event_token,
    seed_get_event_token, seed_many, with_path_parameter, Function,
};
use chrono::Duration;
use harness::github::GithubSigner;
use harness::template::Template;
use serde_json::{json, Value};
use shared::store::Store;
use shared::tokens::{Secret, Token};
use std::collections::HashMap;

/// Creates a user makes in the warm events before the next user takes over: under the default
/// cap of 100 live tokens, with the user's own PAT.
const CREATES_PER_USER: usize = 90;

/// Each function's `events/` file, adjusted so that invocation after invocation does real
/// work: creates (90 a user), revokes and deletes of tokens seeded for them, lists of a user
/// with 22 tokens, get of a seeded token, the authorizer with one valid token, cleanup with
/// nothing due, the `$default` route's 405; a self-rotation of a token seeded for it (each
/// invocation a first rotation), GitHub's leak report (signed with the test key) of a token
/// seeded for it, revocation by value of one seeded for it (plus an unknown and a malformed
/// one). No event names a token another function's event uses. The caller is as template.yaml routes the function:
/// behind the authorizer, its identity in the request context (as API Gateway passes the
/// authorizer's answer); otherwise a seeded PAT of the user in the `Authorization` header, which
/// the function checks itself (its `last used` already written for this throttle window, so a
/// warm invocation makes the lookup alone). A function the list does not know gets its
/// `events/<binary>.json` as it is. Shared by the memory and the invocation steps.
pub struct WarmEvents {
    get: Value,
    get_user: String,
    authorizer: Value,
    list_app_tokens: Value,
    list_pats: Value,
    create: Value,
    create_pat: Value,
    revoke: Value,
    delete: Value,
    to_revoke: Vec<Token>,
    to_delete: Vec<Token>,
    rotate_self: Value,
    /// A `self_rotate` token's secret per self-rotation.
    to_rotate_self: Vec<Secret>,
    leak_report: Value,
    /// A live token's secret per leak report.
    to_report: Vec<Secret>,
    revoke_by_value: Value,
    /// A live token's secret per revocation by value.
    to_revoke_by_value: Vec<Secret>,
    github: GithubSigner,
    /// `Bearer <PAT>` of each user the events act as.
    credentials: HashMap<String, String>,
    /// Functions template.yaml puts behind a Lambda authorizer.
    behind_authorizer: Vec<String>,
}

impl WarmEvents {
    /// What the events do, for the steps' descriptions.
    pub const DESCRIPTION: &'static str = "creates (90 a user), revokes and deletes of seeded \
        tokens, lists of a user with 22 tokens, get of a seeded token, the authorizer with one \
        valid token, cleanup with nothing due, the `$default` route's 405, self-rotations, GitHub's \
        leak reports and revocations by value of seeded tokens (notifications and revocations \
        published to moto's EventBridge, GitHub's keys served on loopback); each route's caller \
        a seeded PAT in the `Authorization` header, checked by the function itself (its `last \
        used` already written for the throttle window), or, for a route template.yaml puts \
        behind the authorizer, the identity in the request context";

    /// Seeds `store` for `invocations` invocations of each function.
    pub async fn seed(store: &Store, invocations: usize) -> Result<WarmEvents, String> {
        let per_user = invocations.clamp(1, 100);
        let users_needed = invocations.div_ceil(per_user);
        let creators = invocations.div_ceil(CREATES_PER_USER);
        harness::dynamodb_local::progress(&format!(
            "bench: seeding {} tokens",
            5 * invocations + 22 + 2 * (users_needed + creators) + 1
        ));
        let get_user = "alice".to_owned();
        let get = seed_get_event_token(store).await?;
        let (authorizer, _) = seed_authorizer_event_token(store).await?;
        let (month, day) = (Duration::days(30), Duration::days(1));
        seed_many(store, std::slice::from_ref(&get_user), 20, month, None).await?;
        let users_named = |role: &str, count: usize| -> Vec<String> {
            (0..count).map(|u| format!("{role}-{u}")).collect()
        };
        let (revoke_users, delete_users) = (
            users_named("revoke", users_needed),
            users_named("delete", users_needed),
        );
        let tokens = |seeded: Vec<(Token, Secret)>| -> Vec<Token> {
            seeded.into_iter().map(|(t, _)| t).collect()
        };
        let to_revoke = tokens(seed_many(store, &revoke_users, per_user, month, None).await?);
        let to_delete = tokens(seed_many(store, &delete_users, per_user, month, None).await?);
        // Outside the expiry notifications' windows (7 days): the notify function's warm runs
        // read the callers' tokens, not thousands.
        let secrets = async |role: &str, scopes: Option<Vec<String>>| {
            let users = users_named(role, users_needed);
            let seeded = seed_many(store, &users, per_user, month, scopes).await?;
            Ok::<Vec<Secret>, String>(seeded.into_iter().map(|(_, s)| s).collect())
        };
        let self_rotate = Some(vec![shared::tokens::scopes::SELF_ROTATE.to_owned()]);
        let to_rotate_self = secrets("rotate-self", self_rotate).await?;
        let to_report = secrets("leaked", None).await?;
        let to_revoke_by_value = secrets("revoke-by-value", None).await?;
        let mut users = vec![get_user.clone()];
        users.extend(revoke_users);
        users.extend(delete_users);
        users.extend(users_named("create", creators));
        users.extend(users_named("create-pat", creators));
        let mut credentials = HashMap::new();
        for (token, secret) in seed_many(store, &users, 1, day, None).await? {
            record_use(store, &secret).await?;
            credentials.insert(token.user_id, format!("Bearer {}", secret.expose()));
        }
        let behind_authorizer = Template::load()
            .http_routes()
            .into_iter()
            .filter(|r| r.authorizer.is_some())
            .map(|r| r.function)
            .collect();
        Ok(WarmEvents {
            get,
            get_user,
            authorizer,
            list_app_tokens: first_page(event("list-app-tokens.json")),
            list_pats: first_page(event("list-pats.json")),
            create: event("create-app-token.json"),
            create_pat: event("create-pat.json"),
            revoke: event("revoke-app-token.json"),
            delete: event("delete-pat.json"),
            to_revoke,
            to_delete,
            rotate_self: event("rotate-self.json"),
            to_rotate_self,
            leak_report: event("secret-scanning-github.json"),
            to_report,
            revoke_by_value: event("revoke-credentials.json"),
            to_revoke_by_value,
            github: GithubSigner::test_key(),
            credentials,
            behind_authorizer,
        })
    }

    /// The get event, with its caller in the authorizer's context.
    pub fn get_event(&self) -> &Value {
        &self.get
    }

    /// The user whose token the get event reads.
    pub fn get_user(&self) -> &str {
        &self.get_user
    }

    /// The event as `user` calls `function`: the authorizer's context when template.yaml puts
    /// one in front of it, else the user's PAT.
    fn as_caller(&self, function: &Function, event: Value, user: &str) -> Value {
        if self.behind_authorizer.contains(&function.logical_id) {
            return as_user(event, user);
        }
        let mut event = event;
        if let Some(context) = event["requestContext"].as_object_mut() {
            context.remove("authorizer");
        }
        event["headers"]["authorization"] = self
            .credentials
            .get(user)
            .cloned()
            .unwrap_or_default()
            .into();
        event
    }

    /// The `i`-th invocation's event for a function (`i` below the count seeded for), or
    /// `None` when there is no `events/<binary>.json`.
    pub fn nth(&self, function: &Function, i: usize) -> Option<Value> {
        let creator = i / CREATES_PER_USER;
        Some(match function.logical_id.as_str() {
            "GetAppTokenFunction" => self.as_caller(function, self.get.clone(), &self.get_user),
            "ListAppTokensFunction" => {
                self.as_caller(function, self.list_app_tokens.clone(), &self.get_user)
            }
            "ListPatsFunction" => self.as_caller(function, self.list_pats.clone(), &self.get_user),
            "CreateAppTokenFunction" => {
                self.as_caller(function, self.create.clone(), &format!("create-{creator}"))
            }
            "CreatePatFunction" => {
                let mut e = self.as_caller(
                    function,
                    self.create_pat.clone(),
                    &format!("create-pat-{creator}"),
                );
                e["body"] = create_pat_body(&format!("bot {i}")).into();
                e
            }
            "RevokeAppTokenFunction" => {
                let token = self.to_revoke.get(i)?;
                with_path_parameter(
                    self.as_caller(function, self.revoke.clone(), &token.user_id),
                    "token_uuid",
                    &token.uuid.to_string(),
                )
            }
            "DeletePatFunction" => {
                let token = self.to_delete.get(i)?;
                with_path_parameter(
                    self.as_caller(function, self.delete.clone(), &token.user_id),
                    "id",
                    &token.number.to_string(),
                )
            }
            "RotateSelfFunction" => {
                let secret = self.to_rotate_self.get(i)?;
                let mut e = self.rotate_self.clone();
                e["headers"]["authorization"] = format!("Bearer {}", secret.expose()).into();
                e
            }
            "SecretScanningGithubFunction" => {
                let secret = self.to_report.get(i)?;
                // The shipped report's entries, its first naming this invocation's token.
                let shipped = self.leak_report["body"].as_str().unwrap_or("[]");
                let mut entries: Value = serde_json::from_str(shipped).ok()?;
                entries[0]["token"] = secret.expose().into();
                let body = entries.to_string();
                let mut e = self.leak_report.clone();
                e["headers"][shared::leaks::github::KEY_ID_HEADER] =
                    self.github.key_id.clone().into();
                e["headers"][shared::leaks::github::SIGNATURE_HEADER] =
                    self.github.sign(body.as_bytes()).into();
                e["headers"]["content-length"] = body.len().to_string().into();
                e["body"] = body.into();
                e
            }
            "RevokeCredentialsFunction" => {
                let secret = self.to_revoke_by_value.get(i)?;
                let unknown = Secret::generate().ok()?;
                let body =
                    json!({"credentials": [secret.expose(), unknown.expose(), "not a token"]})
                        .to_string();
                let mut e = self.revoke_by_value.clone();
                e["headers"]["content-length"] = body.len().to_string().into();
                e["body"] = body.into();
                e
            }
            "AuthorizerFunction" => self.authorizer.clone(),
            _ => return event_file(&function.binary),
        })
    }
}

/// `events/<binary>.json`, when there is one.
pub fn event_file(binary: &str) -> Option<Value> {
    let name = format!("{binary}.json");
    harness::workspace_root()
        .join("events")
        .join(&name)
        .is_file()
        .then(|| event(&name))
}

/// Whether a function answered its warm event as it should: a 2xx HTTP answer, an authorizer's
/// allow, a cleanup's summary, a notification run's report with nothing refused; for the
/// `$default` route, its 405 (or 404).
pub fn answered_as_expected(function: &Function, answer: &Value) -> bool {
    if let Some(status) = answer["statusCode"].as_u64() {
        return match function.logical_id.as_str() {
            "FallbackFunction" => status == 405 || status == 404,
            _ => (200..300).contains(&status),
        };
    }
    answer["isAuthorized"] == true
        || answer["deleted"].is_u64()
        || (answer["examined"].is_u64() && answer["refused"] == 0)
}
