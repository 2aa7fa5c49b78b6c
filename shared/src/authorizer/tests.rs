//! The authorizer over a mocked DynamoDB client: what it reads and writes, and what it logs.
//! The same paths against DynamoDB Local are in `tests/integration/authorizer.rs`.

use super::*;
use crate::config::Config;
use crate::store::items::{secret_pk, LookupItem, SECRET_SK};
use crate::store::Store;
use crate::tokens::Secret;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::error::ResourceNotFoundException;
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Duration;
use http::HeaderValue;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

fn config() -> Config {
    let vars = HashMap::from([("TABLE_NAME".to_owned(), "tokens".to_owned())]);
    Config::from_map(&vars).expect("config")
}

fn authorizer(client: Client) -> App {
    App::new(Store::new(client, "tokens"), config(), None)
}

fn headers(authorization: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(authorization).expect("header value"),
    );
    headers
}

/// GetItem answers with the lookup record of `secret`, owned by alice.
fn lookup_rule(secret: &Secret, expires: Option<DateTime<Utc>>) -> (Rule, Uuid) {
    let uuid = Uuid::new_v4();
    let digest = secret.digest();
    let item = serde_dynamo::aws_sdk_dynamodb_1::to_item(LookupItem {
        pk: secret_pk(&digest.to_hex()),
        sk: SECRET_SK.to_owned(),
        user_id: "alice".into(),
        token_uuid: uuid,
        digest: digest.to_hex(),
        expires_ms: expires.map(|at| at.timestamp_millis()),
        last_used_ms: None,
        ttl: None,
        scopes: Some(vec!["repo:read".into()]),
        superseded_until_ms: None,
    })
    .expect("lookup item");
    let rule = mock!(Client::get_item).then_output(move || {
        GetItemOutput::builder()
            .set_item(Some(item.clone()))
            .build()
    });
    (rule, uuid)
}

fn failing_write_rule() -> Rule {
    mock!(Client::transact_write_items).then_error(|| {
        TransactWriteItemsError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("no such table")
                .build(),
        )
    })
}

fn malformed_headers(good: &Secret) -> Vec<String> {
    let text = good.expose();
    let mut wrong_checksum = text.to_owned();
    let last = if text.ends_with('A') { "B" } else { "A" };
    wrong_checksum.replace_range(text.len() - 1.., last);
    vec![
        format!("Bearer {wrong_checksum}"),
        wrong_checksum.clone(),
        format!(
            "Basic {}",
            STANDARD.encode(format!("$app:{wrong_checksum}"))
        ),
        format!("Bearer {}", text.replacen("pat_", "tap_", 1)),
        format!("Bearer {}", &text[..text.len() - 1]),
        format!("Bearer {text}0"),
        "Bearer".to_owned(),
        format!("Basic {}", STANDARD.encode(format!("alice:{text}"))),
        format!("Basic {}", STANDARD.encode(text)),
        "Basic %%%".to_owned(),
        format!("Token {text}"),
        // A JWT while no issuer is configured.
        "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln".to_owned(),
    ]
}

#[tokio::test]
async fn malformed_tokens_make_no_dynamodb_request() {
    let good = Secret::generate().expect("secret");
    let (get, _) = lookup_rule(&good, None);
    let write = failing_write_rule();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &write]);
    let authorizer = authorizer(client);
    for header in malformed_headers(&good) {
        let decision = authorizer.decide(&headers(&header), Utc::now()).await;
        assert!(!decision.is_allowed(), "{header}");
    }
    let decision = authorizer.decide(&HeaderMap::new(), Utc::now()).await;
    assert_eq!(
        decision,
        Decision::deny(DenyReason::Credentials(CredentialError::Missing))
    );
    assert_eq!(get.num_calls(), 0, "a malformed token reached DynamoDB");
    assert_eq!(write.num_calls(), 0);
}

#[tokio::test]
async fn a_failed_last_used_write_still_allows() {
    let secret = Secret::generate().expect("secret");
    let (get, uuid) = lookup_rule(&secret, None);
    let write = failing_write_rule();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &write]);
    let authorizer = authorizer(client);

    let decision = authorizer
        .decide(&headers(&format!("Bearer {}", secret.expose())), Utc::now())
        .await;
    assert_eq!(
        decision,
        Decision::Allow(Principal {
            user_id: "alice".into(),
            auth: AuthKind::Pat,
            token_uuid: Some(uuid),
            scopes: vec!["repo:read".into()],
            expires: None,
            grace_until: None,
        })
    );
    assert_eq!(get.num_calls(), 1);
    assert!(write.num_calls() >= 1, "the write was not attempted");
}

#[tokio::test]
async fn an_expired_token_is_denied_without_a_write() {
    let secret = Secret::generate().expect("secret");
    let now = Utc::now();
    let (get, uuid) = lookup_rule(&secret, Some(now - Duration::seconds(1)));
    let write = failing_write_rule();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &write]);
    let decision = authorizer(client)
        .decide(&headers(secret.expose()), now)
        .await;
    assert_eq!(
        decision,
        Decision::Deny(Denial {
            reason: DenyReason::Expired,
            auth: Some(AuthKind::Pat),
            user_id: Some("alice".into()),
            token_uuid: Some(uuid),
        })
    );
    assert_eq!(write.num_calls(), 0);
}

#[test]
fn the_context_has_exactly_the_shape_the_routes_read() {
    let uuid = Uuid::new_v4();
    let pat = Principal {
        user_id: "alice".into(),
        auth: AuthKind::Pat,
        token_uuid: Some(uuid),
        scopes: vec!["repo:read".into(), "reports:read".into()],
        expires: DateTime::from_timestamp(1_800_000_000, 0),
        grace_until: None,
    };
    assert_eq!(
        pat.context(),
        json!({"user_id": "alice", "auth": "pat", "token_uuid": uuid.to_string(), "scopes": "repo:read reports:read", "expires": "1800000000"})
    );
    let never = Principal {
        expires: None,
        ..pat.clone()
    };
    assert_eq!(never.context()["expires"], "");
    let in_grace = Principal {
        grace_until: DateTime::from_timestamp(1_700_000_000, 0),
        ..pat.clone()
    };
    assert_eq!(in_grace.context()["grace_until"], "1700000000");
    let allowed = Decision::Allow(pat.clone());
    assert_eq!(
        allowed
            .clone()
            .requiring(&["x:y".into(), "reports:read".into()]),
        allowed
    );
    assert_eq!(
        allowed.requiring(&["repo:write".into()]),
        Decision::Deny(Denial {
            reason: DenyReason::InsufficientScope,
            auth: Some(AuthKind::Pat),
            user_id: Some("alice".into()),
            token_uuid: Some(uuid),
        })
    );
    let jwt = Principal {
        user_id: "bob".into(),
        auth: AuthKind::Jwt,
        token_uuid: None,
        scopes: vec!["openid".into(), "user:admin".into()],
        expires: None,
        grace_until: None,
    };
    assert_eq!(
        jwt.context(),
        json!({"user_id": "bob", "auth": "jwt", "scopes": "openid user:admin"})
    );
    let denied = Decision::deny(DenyReason::Malformed).response();
    assert_eq!(
        serde_json::to_value(denied).unwrap(),
        json!({"isAuthorized": false, "context": {}})
    );
}

/// Collects what the JSON subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("a JSON log line"))
            .collect()
    }
}

#[tokio::test]
async fn one_log_line_per_decision_and_never_the_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let secret = Secret::generate().expect("secret");
    let (get, uuid) = lookup_rule(&secret, None);
    let write = failing_write_rule();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &write]);
    let authorizer = authorizer(client);
    let mut request = ApiGatewayV2CustomAuthorizerV2Request::default();
    request.request_context.request_id = Some("req-1".into());

    let mut forms = vec![
        format!("Bearer {}", secret.expose()),
        secret.expose().to_owned(),
        format!(
            "Basic {}",
            STANDARD.encode(format!("$app:{}", secret.expose()))
        ),
    ];
    forms.extend(malformed_headers(&secret));
    for form in &forms {
        request.headers = headers(form);
        authorize(&authorizer, request.clone())
            .await
            .expect("a decision");
    }

    let lines = captured.lines();
    let decisions: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "authorization decision")
        .collect();
    assert_eq!(decisions.len(), forms.len(), "{lines:#?}");
    for allowed in &decisions[..3] {
        let fields = &allowed["fields"];
        assert_eq!(fields["decision"], "allow");
        assert_eq!(fields["auth"], "pat");
        assert_eq!(fields["user_id"], "alice");
        assert_eq!(fields["token_uuid"], uuid.to_string());
        assert_eq!(fields["request_id"], "req-1");
        assert_eq!(allowed["level"], "INFO");
    }
    for denied in &decisions[3..] {
        assert_eq!(denied["fields"]["decision"], "deny");
        assert!(denied["fields"]["reason"].is_string());
    }
    let everything = serde_json::to_string(&lines).unwrap();
    let random_part = &secret.expose()[4..34];
    assert!(
        !everything.contains(random_part),
        "a secret reached the log: {everything}"
    );
    assert!(!everything.contains(&STANDARD.encode(format!("$app:{}", secret.expose()))));
}
