//! Each function's handler, as its `functions/<name>/src/main.rs` calls it, with its own
//! recording clients: the shipped `events/<name>.json`, then the paths that make other calls
//! (a PAT caller, a full cap, a taken title, grace and reuse, a counter found too low, a lost
//! race, published events). Each path's distinctive call is asserted, so a scenario that stops
//! reaching its path fails here rather than checking less.

mod jobs;
mod routes;

use crate::authorizer::authorizer_request;
use crate::route_auth::with_authorization;
use crate::support::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use harness::events::with_path_parameter;
use harness::github::GithubSigner;
use harness::iam_calls::CallRecorder;
use harness::moto::Moto;
use harness::oidc::JwksServer;
use harness::DynamoLocal;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use shared::events::EventBus;
use shared::leaks::github::{GithubKeys, KEY_ID_HEADER, SIGNATURE_HEADER};
use shared::store::{items, Audit, NewToken, Store};
use shared::tokens::{Secret, Token};
use shared::App;
use std::collections::BTreeMap;

pub struct Run {
    pub table: String,
    pub bus: String,
    /// By binary name.
    pub recorders: BTreeMap<String, CallRecorder>,
}

struct Rig {
    env: TestEnv,
    bus: String,
    recorders: BTreeMap<String, CallRecorder>,
}

impl Rig {
    fn recorder(&mut self, function: &str) -> CallRecorder {
        self.recorders.entry(function.into()).or_default().clone()
    }

    /// The function's `App`, as `App::from_env` builds it, over a client recording its calls.
    fn app(&mut self, function: &str) -> App {
        let client = self
            .recorder(function)
            .dynamodb(&DynamoLocal::shared().endpoint);
        let store = Store::new(client, self.env.table());
        App::new(store, self.env.app.config.clone(), None)
    }

    fn events(&mut self, function: &str) -> EventBus {
        let client = self
            .recorder(function)
            .eventbridge(&Moto::shared().endpoint);
        EventBus::new(client, self.bus.clone())
    }

    /// Asserts the function made `action` (on a resource ending in `resource`).
    fn reached(&self, function: &str, action: &str, resource: &str, path: &str) {
        let calls = self.recorders[function].calls();
        assert!(
            calls
                .iter()
                .any(|c| c.action == action && c.resource.ends_with(resource)),
            "{function}: the scenario '{path}' no longer makes {action} on …{resource}: {calls:?}"
        );
    }

    /// A token of `user` with this secret and title, expiring `expires_in` from now.
    async fn token(&self, user: &str, secret: &Secret, title: &str, expires_in: Duration) -> Token {
        let now = Utc::now();
        let new = NewToken {
            user_id: user.into(),
            uuid: uuid::Uuid::new_v4(),
            title: title.into(),
            created: shared::tokens::truncate_to_millis(
                now + expires_in.min(Duration::zero()) - Duration::days(1),
            ),
            expires: Some(shared::tokens::truncate_to_millis(now + expires_in)),
            scopes: None,
        };
        let store = &self.env.app.store;
        store
            .create_token(new, &secret.digest(), 1_000, self.env.app.config.ttl_grace)
            .await
            .expect("seeded token")
    }

    /// Sets the user's live counter to zero (lower than it is): the next removal recounts it.
    async fn zero_counter(&self, user: &str) {
        self.env
            .client
            .update_item()
            .table_name(self.env.table())
            .set_key(Some(items::counter_key(user)))
            .update_expression("SET #live = :zero")
            .expression_attribute_names("#live", items::LIVE)
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await
            .expect("counter set");
    }

    /// Waits until the sweep index holds the user's tokens (`count`).
    async fn indexed(&self, user: &str, count: i32) {
        for _ in 0..200 {
            let page = self
                .env
                .client
                .scan()
                .table_name(self.env.table())
                .index_name(items::SWEEP_INDEX)
                .filter_expression("#pk = :pk")
                .expression_attribute_names("#pk", items::PK)
                .expression_attribute_values(":pk", AttributeValue::S(items::user_pk(user)))
                .send()
                .await
                .expect("scan the sweep index");
            if page.count >= count {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the sweep index never held {count} tokens of {user}");
    }
}

fn bearer(secret: &Secret) -> String {
    format!("Bearer {}", secret.expose())
}

fn pat_caller(name: &str, secret: &Secret) -> Value {
    with_authorization(event(name), Some(&bearer(secret)))
}

fn session(name: &str, user: &str) -> Value {
    as_user(event(name), user)
}

fn status(response: lambda_http::Response<lambda_http::Body>, expected: u16, what: &str) -> Answer {
    let got = answer(response);
    assert_eq!(got.status, expected, "{what}: {}", got.text);
    got
}

fn secret_at(answer: &Answer, pointer: &str) -> Secret {
    let text = answer
        .json()
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned);
    Secret::parse(&text.unwrap_or_default()).expect("a secret in the answer")
}

fn scheduled(name: &str) -> LambdaEvent<Value> {
    LambdaEvent::new(event(name), Context::default())
}

pub async fn run_all() -> Run {
    let bus = format!("iam-{}", std::process::id());
    Moto::shared()
        .bus_to_queue(&bus, &format!("{bus}-queue"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rig = Rig {
        env: TestEnv::new().await,
        bus,
        recorders: BTreeMap::new(),
    };
    // The cleanup scenario seeds tokens past their grace: only the sweep may remove them.
    rig.env.without_ttl_deletion().await;
    routes::routes(&mut rig).await;
    routes::rotations(&mut rig).await;
    jobs::scheduled_runs(&mut rig).await;
    jobs::leaks(&mut rig).await;
    Run {
        table: rig.env.table().to_owned(),
        bus: rig.bus,
        recorders: rig.recorders,
    }
}
